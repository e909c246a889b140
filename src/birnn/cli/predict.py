"""`birnn predict`: a trained tagger over files or stdin, streamed, in CoNLL, CoNLL-U or JSON lines."""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np

from birnn.cli.options import POSITIVE
from birnn.data.tokenizers import TOKENIZERS
from birnn.serve.formats import INPUTS, OUTPUTS, Block, format_block, open_lines, read_blocks


def _blocks(files: tuple[str, ...], input_format: str, tokenizer: str) -> Iterator[Block]:
    for name in files or ("-",):
        yield from read_blocks(open_lines(name, sys.stdin.buffer), input_format, name, tokenizer)


def _progress(blocks: Iterator[Block], counter: list[int]) -> Iterator[Block]:
    """Count sentences and tokens on the way through; a bar on a terminal."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        blocks = tqdm(blocks, unit=" sentences", file=sys.stderr, leave=False)
    for block in blocks:
        counter[0] += 1
        counter[1] += len(block.tokens)
        yield block


def _classify(model: Any, files: tuple[str, ...], output_format: str) -> None:
    """A classifier: one sentence per input line, split as in training -> ``label<TAB>p`` per line
    (json: the text, the label and every label's probability); an empty line stays empty."""
    if output_format == "conllu":
        raise click.UsageError("a classifier labels whole sentences: use --format conll or json")
    labels = model.labels
    texts, pending = itertools.tee(text for name in files or ("-",) for _, text in open_lines(name, sys.stdin.buffer))
    results = model.stream((model.tokenize(text) for text in pending), method="predict_with_proba",
                           empty=("", None))
    for text, (label, p) in zip(texts, results, strict=True):
        if p is None:
            click.echo("")
        elif output_format == "json":
            probabilities = {name: round(float(q), 6) for name, q in zip(labels, p, strict=True)}
            click.echo(json.dumps({"text": text, "label": label, "p": probabilities}, ensure_ascii=False))
        else:
            click.echo(f"{label}\t{float(p[labels.index(label)]):.4f}")


@click.command("predict")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--input", "input_format", type=click.Choice(INPUTS),
              help="text: a sentence per line; conll: a token per line; conllu. [default: conllu "
                   "for --format conllu, else text]")
@click.option("--tokenize", "tokenizer", default="whitespace", show_default=True, type=click.Choice(TOKENIZERS),
              help="How --input text is cut: on whitespace, or as UD English treebanks cut words (can't -> ca n't).")
@click.option("--format", "output_format", default="conll", show_default=True, type=click.Choice(OUTPUTS),
              help="conll: token<TAB>tag lines; conllu: the input with the tag column filled; "
                   "json: one object per sentence (tokens, tags, p, spans).")
@click.option("--column", default="upos", show_default=True, type=click.Choice(["upos", "xpos"]),
              help="The CoNLL-U column --format conllu fills.")
@click.option("--marginals", is_flag=True, help="JSON: the probability of every tag of every token.")
@click.option("--batch-size", default=256, show_default=True, type=POSITIVE)
@click.option("--engine", default="torch", show_default=True, type=click.Choice(["torch", "onnx"]),
              help="onnx: RUN is the .onnx file of `birnn export` (or its folder), run by onnxruntime, no torch.")
@click.option("--device", default="auto", show_default=True, help="torch engine: auto | cpu | cuda | cuda:N.")
@click.option("--threads", type=POSITIVE, help="Intra-op threads. [default: the engine's]")
def predict_command(run: Path, files: tuple[str, ...], input_format: str | None, tokenizer: str,
                    output_format: str, column: str, marginals: bool, batch_size: int, engine: str,
                    device: str, threads: int | None) -> None:
    """Tag FILES (or stdin) with the best weights of RUN; tokens/s on stderr at the end."""
    from birnn import load

    input_format = input_format or ("conllu" if output_format == "conllu" else "text")
    if output_format == "conllu" and input_format != "conllu":
        raise click.UsageError("--format conllu fills the column of CoNLL-U input: use --input conllu")
    model = load(run, batch_size=batch_size, threads=threads, device=device, engine=engine)
    start, counter = time.perf_counter(), [0, 0]
    if model.kind == "classify":
        return _classify(model, files, output_format)
    labels = model.labels
    # tee holds the blocks of the predictor's current chunk only: memory stays bounded
    blocks, pending = itertools.tee(_progress(_blocks(files, input_format, tokenizer), counter))
    results = model.stream((block.tokens for block in pending), method="predict_with_proba",
                           empty=([], np.zeros((0, len(labels)))))
    for block, (tags, p) in zip(blocks, results, strict=True):
        for line in format_block(output_format, block, tags, p, labels, marginals, column):
            click.echo(line)
    seconds = time.perf_counter() - start
    click.echo(f"{counter[0]:,} sentences, {counter[1]:,} tokens in {seconds:.1f} s "
               f"({counter[1] / max(seconds, 1e-9):,.0f} tokens/s)", err=True)
