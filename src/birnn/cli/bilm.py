"""`birnn train bilm` (two one-directional character LMs) and `birnn embed` (per-token vectors)."""

from __future__ import annotations

from pathlib import Path

import click

from birnn.cli.options import FILE, POSITIVE, POSITIVE_FLOAT, RUN, from_config
from birnn.experiments.bilm import SHIPPED, BiLMRun, embed_file, run_bilm
from birnn.tasks.bilm import CELLS
from birnn.train import with_overrides

_B = BiLMRun()
_DEVICE = "auto (CUDA when torch sees it) | cpu | cuda | cuda:N."


@click.command("bilm")
@from_config(_B, "texts", "--text", multiple=True,
             help=f"A text or CoNLL(-U) file, or a shipped corpus ({', '.join(SHIPPED)}); repeat for several.")
@from_config(_B, "corpora", type=click.Path(file_okay=False, path_type=Path), help="Where the shipped corpora are.")
@from_config(_B, "heldout", type=click.FloatRange(0, 1, max_open=True), help="Last fraction of each text held out.")
@from_config(_B, "steps", type=POSITIVE, help="Characters per training example (longer lines are cut).")
@from_config(_B, "model.cell", type=click.Choice(sorted(CELLS)))
@from_config(_B, "model.hidden", type=POSITIVE, help="Units of each direction's LM.")
@from_config(_B, "model.layers", type=POSITIVE)
@from_config(_B, "model.embedding", type=POSITIVE, help="Character vector size.")
@from_config(_B, "model.dropout", type=click.FloatRange(0, 1, max_open=True), help="Before the softmax.")
@from_config(_B, "train.epochs", type=POSITIVE)
@from_config(_B, "train.batch_size", type=POSITIVE)
@from_config(_B, "train.lr", type=POSITIVE_FLOAT)
@from_config(_B, "train.clip", type=POSITIVE_FLOAT)
@from_config(_B, "train.seed", type=int)
@click.option("--out", default=Path("runs/bilm"), show_default=True, type=RUN)
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--device", default="auto", show_default=True, help=_DEVICE)
def bilm_command(out: Path, resume: bool, quiet: bool, device: str, texts: tuple[str, ...], **settings) -> None:
    """Train a forward and a backward character LM on raw text; report each direction's held-out perplexity."""
    report = run_bilm(with_overrides(_B, texts=tuple(texts), **settings), out, resume, not quiet, click.echo, device)
    for name, value in report.items():
        click.echo(f"{name} {value:,.3f}" if isinstance(value, float) else f"{name} {value:,}")


@click.command("embed")
@click.argument("run", type=RUN)
@click.option("--data", "data_file", required=True, type=FILE,
              help="One whitespace-tokenised sentence per line, or a CoNLL(-U) file.")
@click.option("--to", "to", required=True, type=FILE, help="Output: .safetensors, or .npy with a .json index.")
@click.option("--batch-size", default=64, show_default=True, type=POSITIVE)
def embed_command(run: Path, data_file: Path, to: Path, batch_size: int) -> None:
    """Write the token vectors of RUN (a biLM, or a tagger's encoder features) for every sentence of --data."""
    sentences, tokens, dim = embed_file(run, data_file, to, batch_size)
    click.echo(f"{tokens:,} token vectors of {dim} values ({sentences:,} sentences) written to {to}")
