"""`birnn train tag`, `birnn evaluate`, `birnn predict`: taggers on the user's own files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from birnn.cli.options import FILE, POSITIVE, POSITIVE_FLOAT, RUN, from_config, one_line
from birnn.experiments.tagging import TagRun, run_tagger, score_file
from birnn.serve import load
from birnn.tasks import MODELS
from birnn.train import with_overrides

_T = TagRun(train_file=Path("train.conll"))
_FORMAT = click.Choice(["auto", "conllu", "conll"])
_COLUMN = click.Choice(["upos", "xpos"])


@click.group("train", help="Train a model from the command line.")
def train_group() -> None:
    pass


@train_group.command("tag")
@click.option("--train", "train_file", required=True, type=FILE, help="Training file (.conllu[.gz] or CoNLL columns).")
@click.option("--dev", "dev_file", type=FILE, help="Development file (early stopping, best checkpoint).")
@click.option("--test", "test_file", type=FILE, help="Test file, evaluated with the best weights at the end.")
@from_config(_T, "file_format", "--format", type=_FORMAT)
@from_config(_T, "column", type=_COLUMN, help="CoNLL-U tag column.")
@from_config(_T, "model.model", type=click.Choice(sorted(MODELS)))
@from_config(_T, "model.hidden", type=POSITIVE, help="Units per direction (a one-directional model gets 2×).")
@from_config(_T, "model.embedding", type=POSITIVE)
@from_config(_T, "model.layers", type=POSITIVE)
@from_config(_T, "model.dropout", type=click.FloatRange(0, 1, max_open=True))
@from_config(_T, "train.epochs", type=POSITIVE)
@from_config(_T, "train.batch_size", type=POSITIVE)
@from_config(_T, "train.optimizer", type=click.Choice(["adam", "sgd"]))
@from_config(_T, "train.clip", type=POSITIVE_FLOAT, help="Max gradient norm.")
@from_config(_T, "train.lr_decay", type=POSITIVE_FLOAT, help="Learning-rate factor per epoch.")
@from_config(_T, "train.lr", type=POSITIVE_FLOAT)
@from_config(_T, "train.patience", type=POSITIVE, help="Stop after N epochs without a better dev score.")
@from_config(_T, "train.seed", type=int)
@click.option("--out", default=Path("runs/tagger"), show_default=True, type=RUN, help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def tag_command(train_file: Path, out: Path, resume: bool, quiet: bool, **settings) -> None:
    """Train a POS/NER tagger; writes checkpoints, metrics.csv, summary.json and curves.png to --out.

    Under torchrun every process runs this command; --batch-size is the global batch."""
    run = with_overrides(TagRun(train_file=train_file), **settings)
    result = run_tagger(run, out, resume, progress=not quiet, log=click.echo)
    click.echo(f"best dev {result['monitor']}: {result['best_dev']}; run in {out}")
    if result["test"] is not None:
        click.echo("test " + one_line(result["test"]))


@click.command("evaluate")
@click.argument("run", type=RUN)
@click.option("--data", "data_file", required=True, type=FILE, help="Tagged file to score.")
@from_config(_T, "file_format", "--format", type=_FORMAT)
@from_config(_T, "column", type=_COLUMN)
def evaluate_command(run: Path, data_file: Path, file_format: str, column: str) -> None:
    """Accuracy (and span F1 for BIO tags) of the best weights of RUN on --data."""
    for name, value in score_file(run, data_file, file_format, column).items():
        click.echo(f"{name} {value:.4f}")


@click.command("predict")
@click.argument("run", type=RUN)
@click.option("--batch-size", default=256, show_default=True, type=POSITIVE)
def predict_command(run: Path, batch_size: int) -> None:
    """Tag stdin: one whitespace-tokenised sentence per line in, one line of tags out."""
    model = load(run, batch_size=batch_size)
    for tags in model.stream(line.split() for line in sys.stdin):
        click.echo(" ".join(tags))
