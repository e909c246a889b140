"""`birnn train tag`, `birnn evaluate`: taggers on the user's own files."""

from __future__ import annotations

from pathlib import Path

import click

from birnn.cli.options import FILE, POSITIVE, POSITIVE_FLOAT, RUN, from_config, one_line, preset_option
from birnn.experiments.tagging import PRESETS, TagRun, headline, report_lines, run_tagger, score_file
from birnn.tasks import MODELS
from birnn.tasks.tagger import CHAR_ENCODERS

_T = TagRun(train_file=Path("train.conll"))
_PRESETS = {name: TagRun.build(Path("train.conll"), name) for name in sorted(PRESETS)}
_UNIT = click.FloatRange(0, 1, max_open=True)
_FORMAT = click.Choice(["auto", "conllu", "conll"])
_COLUMN = click.Choice(["upos", "xpos"])
_DEVICE = "auto (CUDA when torch sees it) | cpu | cuda | cuda:N."


@click.group("train", help="Train a model from the command line.")
def train_group() -> None:
    pass


def _p(path: str, *declarations: str, **settings):
    return preset_option(_T, _PRESETS, path, *declarations, **settings)


@train_group.command("tag")
@click.option("--train", "train_file", required=True, type=FILE, help="Training file (.conllu[.gz] or CoNLL columns).")
@click.option("--dev", "dev_file", type=FILE, help="Development file (model selection, early stopping).")
@click.option("--test", "test_file", type=FILE, help="Test file, evaluated with the best weights at the end.")
@from_config(_T, "file_format", "--format", type=_FORMAT)
@from_config(_T, "column", type=_COLUMN, help="CoNLL-U tag column.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="Settings of the documented UPOS or NER tagger.")
@_p("model.model", type=click.Choice(sorted(MODELS)))
@_p("model.hidden", type=POSITIVE, help="Units per direction (a one-directional model gets 2×).")
@_p("model.embedding", type=POSITIVE, help="Word vector size.")
@_p("model.layers", type=POSITIVE)
@_p("model.chars", type=click.Choice(CHAR_ENCODERS), help="Character encoder per word.")
@_p("model.char_embedding", type=POSITIVE)
@_p("model.char_hidden", type=POSITIVE, help="Character units per direction (CNN: 2× filters).")
@_p("model.shape_embedding", type=click.IntRange(min=0), help="Case/shape feature size (0: off).")
@_p("model.lowercase", is_flag=True, help="Look words up lower-cased (characters keep the case).")
@_p("model.dropout", type=_UNIT, help="On token vectors, between layers and on encoder outputs.")
@_p("model.locked", is_flag=True, help="One dropout mask per sentence (variational).")
@_p("model.word_dropout", type=_UNIT, help="P(a training singleton is read as <unk>).")
@_p("model.crf", is_flag=True, help="CRF output layer (constrained for BIO/BIOES tags).")
@_p("model.scheme", "--tag-scheme", type=click.Choice(["bio", "bioes"]), help="Scheme the network learns.")
@_p("train.epochs", type=POSITIVE)
@_p("train.batch_size", type=POSITIVE)
@_p("train.optimizer", type=click.Choice(["adam", "sgd"]))
@_p("train.lr", type=POSITIVE_FLOAT)
@_p("train.momentum", type=_UNIT, help="SGD momentum.")
@_p("train.clip", type=POSITIVE_FLOAT, help="Max gradient norm.")
@_p("train.lr_decay", type=POSITIVE_FLOAT, help="Learning-rate factor per epoch.")
@_p("train.patience", type=POSITIVE, help="Stop after N epochs without a better dev score.")
@_p("train.monitor", help="Dev metric for best/ and patience (auto: span F1 for BIO/BIOES tags, else accuracy).")
@from_config(_T, "train.seed", type=int)
@_p("model.bilm", type=click.Path(file_okay=False), help="biLM run: frozen token vectors join the input.")
@click.option("--out", default=Path("runs/tagger"), show_default=True, type=RUN, help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--device", default="auto", show_default=True, help=_DEVICE)
def tag_command(train_file: Path, out: Path, resume: bool, quiet: bool, device: str, **settings) -> None:
    """Train a POS/NER tagger; writes checkpoints, metrics.csv, summary.json and curves.png to --out.

    Under torchrun every process runs this command; --batch-size is the global batch."""
    run = TagRun.build(train_file, **settings)
    result = run_tagger(run, out, resume, progress=not quiet, log=click.echo, device=device)
    if result is None:  # not the main rank under torchrun
        return
    click.echo(f"best dev {result['monitor']}: {result['best_dev']}; run in {out}")
    if result["test"] is not None:
        click.echo("test " + one_line(headline(result["test"])))


@click.command("evaluate")
@click.argument("run", type=RUN)
@click.option("--data", "data_file", required=True, type=FILE, help="Tagged file to score.")
@from_config(_T, "file_format", "--format", type=_FORMAT)
@from_config(_T, "column", type=_COLUMN)
@click.option("--device", default="auto", show_default=True, help=_DEVICE)
def evaluate_command(run: Path, data_file: Path, file_format: str, column: str, device: str) -> None:
    """Accuracy (and span F1 for BIO tags) of the best weights of RUN on --data."""
    for line in report_lines(score_file(run, data_file, file_format, column, device)):
        click.echo(line)
