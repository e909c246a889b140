"""`birnn train lm`, `birnn generate`, `birnn train cloze`, `birnn fill`: The Time Machine experiments."""

from __future__ import annotations

from pathlib import Path

import click

from birnn.cli.options import POSITIVE, POSITIVE_FLOAT, RUN, from_config, preset_option
from birnn.experiments.timemachine import ClozeRun, LMRun, run_cloze, run_language_model
from birnn.tasks import MODELS
from birnn.tasks.language_model import PARTITIONS
from birnn.train import load_task, with_overrides

_L, _D2L, _C = LMRun(), LMRun.d2l("bilstm"), ClozeRun()
_MODEL = click.Choice(sorted(MODELS))
_DEVICE = "auto (CUDA when torch sees it) | cpu | cuda | cuda:N."


def register(train_group: click.Group, app: click.Group) -> None:
    train_group.add_command(lm_command, "lm")
    train_group.add_command(cloze_command, "cloze")
    app.add_command(generate_command, "generate")
    app.add_command(fill_command, "fill")


def _preset(path: str, *declarations: str, **settings):
    return preset_option(_L, {"d2l": _D2L}, path, *declarations, **settings)


@click.command("lm")
@from_config(_L, "data", help="A text file or the name 'timemachine'.")
@from_config(_L, "max_tokens", type=click.IntRange(min=100), help="Training characters (d2l: 10,000).")
@from_config(_L, "heldout", type=click.IntRange(min=0), help="Held-out characters after the training text.")
@from_config(_L, "model.model", type=_MODEL)
@click.option("--preset", type=click.Choice(["d2l"]), help="d2l's chapter-8 setting (LMRun.d2l).")
@_preset("model.partition", type=click.Choice(PARTITIONS), help="random windows or sequential (state carried).")
@_preset("model.hidden", type=POSITIVE, help="Units per direction (a one-directional model gets 2×).")
@_preset("model.layers", type=POSITIVE)
@from_config(_L, "model.embedding", type=click.IntRange(min=0), help="0: one-hot input (d2l).")
@_preset("train.batch_size", "--batch-size", "--batch", type=POSITIVE, help="Windows per batch.")
@_preset("steps", type=click.IntRange(min=2), help="Characters per window.")
@_preset("train.optimizer", type=click.Choice(["sgd", "adam"]))
@click.option("--lr", type=POSITIVE_FLOAT, help="[default: 3e-3 with adam; sgd: 2 (lstm), 1 (bilstm)]")
@_preset("train.clip", type=POSITIVE_FLOAT)
@_preset("train.epochs", type=POSITIVE)
@from_config(_L, "train.seed", type=int)
@click.option("--out", default=Path("runs/lm"), show_default=True, type=RUN)
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--device", default="auto", show_default=True, help=_DEVICE)
def lm_command(out: Path, resume: bool, quiet: bool, device: str, **settings) -> None:
    """Train a character language model on The Time Machine (or any text); report training,
    held-out and causal perplexity."""
    report = run_language_model(LMRun.build(**settings), out, resume, progress=not quiet, log=click.echo,
                                device=device)
    for name, value in report.items():
        click.echo(f"{name} {value!r}" if isinstance(value, str) else f"{name} {value:.2f}")


@click.command("generate")
@click.argument("run", type=RUN)
@click.option("--prefix", default="time traveller", show_default=True)
@click.option("--chars", default=50, show_default=True, type=POSITIVE)
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(min=0), help="0: greedy.")
@click.option("--seed", default=0, show_default=True, type=int)
def generate_command(run: Path, prefix: str, chars: int, temperature: float, seed: int) -> None:
    """Continue PREFIX with a trained language model of RUN."""
    task = load_task(run, "checkpoint")
    if not hasattr(task, "generate"):
        raise ValueError(f"{run}: a {task.kind} run, not a language model")
    click.echo(task.generate(prefix.lower(), chars, temperature, seed))


@click.command("cloze")
@from_config(_C, "data", help="A text file or the name 'timemachine'.")
@from_config(_C, "model.unit", type=click.Choice(["char", "word"]))
@from_config(_C, "model.model", type=_MODEL)
@from_config(_C, "model.hidden", type=POSITIVE, help="Units per direction.")
@from_config(_C, "equal_parameters", "--equal-parameters/--no-equal-parameters",
             help="A left-to-right model gets as many recurrent parameters as the bidirectional one.")
@from_config(_C, "model.embedding", type=POSITIVE)
@from_config(_C, "steps", type=click.IntRange(min=2), help="Tokens per window.")
@from_config(_C, "model.rate", type=click.FloatRange(0, 1, min_open=True, max_open=True))
@from_config(_C, "copies", type=POSITIVE, help="Masked copies per window.")
@from_config(_C, "train.epochs", type=POSITIVE)
@from_config(_C, "train.lr", type=POSITIVE_FLOAT)
@from_config(_C, "train.seed", type=int)
@click.option("--out", default=Path("runs/cloze"), show_default=True, type=RUN)
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--device", default="auto", show_default=True, help=_DEVICE)
def cloze_command(out: Path, resume: bool, quiet: bool, device: str, **settings) -> None:
    """Train a model to fill masked characters (or words) from both sides; held out: the last 10%."""
    report = run_cloze(with_overrides(_C, **settings), out, resume, progress=not quiet, log=click.echo,
                       device=device)
    click.echo(f"held-out masked-{report['unit']} accuracy {report['accuracy']:.4f} "
               f"({report['parameters']:,} parameters)")


@click.command("fill")
@click.argument("run", type=RUN)
@click.argument("text")
@click.option("--top", default=5, show_default=True, type=POSITIVE, help="Candidates per blank (at most all).")
def fill_command(run: Path, text: str, top: int) -> None:
    """Fill each blank of TEXT: '_' for a character model, '[MASK]' for a word model."""
    task = load_task(run)
    if not hasattr(task, "fill"):
        raise ValueError(f"{run}: a {task.kind} run, not a cloze model")
    for number, candidates in enumerate(task.fill(text, top), start=1):  # at most all
        click.echo(f"blank {number}: " + "  ".join(f"{token!r} {p:.3f}" for token, p in candidates))
