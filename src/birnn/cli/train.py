"""`birnn train tag`, `birnn evaluate`, `birnn predict`: taggers on the user's own files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from birnn.data import read_tagged
from birnn.tasks.tagging import MODELS, TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer, distributed, evaluate

_FILE = click.Path(dir_okay=False, path_type=Path)
_RUN = click.Path(file_okay=False, path_type=Path)


@click.group("train", help="Train a model from the command line.")
def train_group() -> None:
    pass


@train_group.command("tag")
@click.option("--train", "train_file", required=True, type=_FILE, help="Training file (.conllu[.gz] or CoNLL columns).")
@click.option("--dev", "dev_file", type=_FILE, help="Development file (early stopping, best checkpoint).")
@click.option("--test", "test_file", type=_FILE, help="Test file, evaluated with the best weights at the end.")
@click.option("--format", "file_format", default="auto", type=click.Choice(["auto", "conllu", "conll"]))
@click.option("--column", default="upos", type=click.Choice(["upos", "xpos"]), help="CoNLL-U tag column.")
@click.option("--model", default="bilstm", show_default=True, type=click.Choice(sorted(MODELS)))
@click.option("--hidden", default=128, show_default=True, type=click.IntRange(min=1), help="Units per direction.")
@click.option("--embedding", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--layers", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--dropout", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--optimizer", default="adam", show_default=True, type=click.Choice(["adam", "sgd"]))
@click.option(
    "--clip", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Max grad norm."
)
@click.option(
    "--lr-decay", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Per epoch."
)
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--patience", default=None, type=click.IntRange(min=1), help="Early stopping after N epochs.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=Path("runs/tagger"), show_default=True, type=_RUN, help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def tag_command(**options) -> None:
    """Train a POS/NER tagger; writes checkpoints, metrics.csv, summary.json and curves.png to --out.

    Under torchrun every process runs this command; --batch-size is the global batch."""
    distributed.setup_from_env()
    train = read_tagged(options["train_file"], options["file_format"], options["column"])
    dev = read_tagged(options["dev_file"], options["file_format"], options["column"]) if options["dev_file"] else None
    model_config = TaggerConfig(
        model=options["model"],
        embedding=options["embedding"],
        hidden=options["hidden"],
        layers=options["layers"],
        dropout=options["dropout"],
        seed=options["seed"],
    )
    out: Path = options["out"]
    if options["resume"]:
        task = TaggingTask.from_run(out, "checkpoint")
        task.model.train()
    else:
        if (out / "checkpoint" / "state.json").is_file():
            raise click.UsageError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        task = TaggingTask.for_data(model_config, train)
    train_config = TrainConfig(
        epochs=options["epochs"],
        batch_size=options["batch_size"],
        lr=options["lr"],
        optimizer=options["optimizer"],
        clip=options["clip"],
        lr_decay=options["lr_decay"],
        patience=options["patience"],
        seed=options["seed"],
    )
    trainer = Trainer(
        task,
        task.encode(train),
        _encode_known_tags(task, dev, options["dev_file"]) if dev else None,
        train_config,
        out,
        progress=not options["quiet"],
        on_epoch=lambda epoch, row: click.echo(
            f"epoch {epoch}: train loss {row['train_loss']:.4f}"
            + "".join(f", {k} {v:.4f}" for k, v in row.items() if k.startswith("dev_"))
            + f", {row['tokens_per_s']:,.0f} tokens/s"
        ),
    )
    result = trainer.fit(resume=options["resume"])
    if not distributed.is_main():
        return
    click.echo(f"best dev {train_config.monitor}: {result['best_dev']}; run in {out}")
    if options["test_file"]:
        best = TaggingTask.from_run(out)
        test = read_tagged(options["test_file"], options["file_format"], options["column"])
        scores = evaluate(best, _encode_known_tags(best, test, options["test_file"]))
        click.echo("test " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def _encode_known_tags(task: TaggingTask, sentences, path: Path):
    unknown = sorted({tag for _, tags in sentences for tag in tags if tag not in task.tags})
    if unknown:
        raise click.UsageError(f"{path}: tags not seen in training: {', '.join(unknown[:10])}")
    return task.encode(sentences)


@click.command("evaluate")
@click.argument("run", type=_RUN)
@click.option("--data", "data_file", required=True, type=_FILE, help="Tagged file to score.")
@click.option("--format", "file_format", default="auto", type=click.Choice(["auto", "conllu", "conll"]))
@click.option("--column", default="upos", type=click.Choice(["upos", "xpos"]))
def evaluate_command(run: Path, data_file: Path, file_format: str, column: str) -> None:
    """Accuracy (and span F1 for BIO tags) of the best weights of RUN on --data."""
    task = TaggingTask.from_run(run)
    scores = evaluate(task, _encode_known_tags(task, read_tagged(data_file, file_format, column), data_file))
    for name, value in scores.items():
        click.echo(f"{name} {value:.4f}")


@click.command("predict")
@click.argument("run", type=_RUN)
def predict_command(run: Path) -> None:
    """Tag stdin: one whitespace-tokenised sentence per line in, one line of tags out."""
    from birnn.data import collate

    task = TaggingTask.from_run(run)
    for line in sys.stdin:
        tokens = line.split()
        if not tokens:
            click.echo("")
            continue
        batch = collate([(task.words.encode(tokens), [0] * len(tokens))])
        click.echo(" ".join(task.tags.decode(task.predict(batch)[0])))
