"""`birnn demo`: the main job — a BiLSTM is a learned forward–backward algorithm, in numbers."""

from __future__ import annotations

import json
from pathlib import Path

import click

from birnn.tasks.demo import DemoConfig, run_demo, summary


@click.command("demo")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of data and models.")
@click.option("--states", default=4, show_default=True, type=click.IntRange(min=2), help="Hidden states = tags.")
@click.option("--symbols", default=8, show_default=True, type=click.IntRange(min=2), help="Observed symbols.")
@click.option("--length", default=50, show_default=True, type=click.IntRange(min=2), help="Sequence length.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1), help="Training epochs.")
@click.option("--train-size", default=6000, show_default=True, type=click.IntRange(min=1), help="Train sequences.")
@click.option("--casino", is_flag=True, help="Use Durbin's dishonest casino as the HMM.")
@click.option("--out", default=Path("demo_out"), show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo_command(
    seed: int,
    states: int,
    symbols: int,
    length: int,
    epochs: int,
    train_size: int,
    casino: bool,
    out: Path,
    quiet: bool,
) -> None:
    """Sample tagged data from an HMM, compute the Bayes-optimal taggers, train an LSTM and a
    BiLSTM, and print how close each gets to its optimum (writes OUT/demo.png)."""
    config = DemoConfig(
        seed=seed, states=states, symbols=symbols, length=length, epochs=epochs, train=train_size, use_casino=casino
    )
    result = run_demo(config, out, progress=not quiet, log=click.echo)
    click.echo("")
    click.echo(result.table())
    (out / "demo.json").write_text(json.dumps(summary(result), indent=1))
    click.echo(f"\nwrote {out / 'demo.png'} and {out / 'demo.json'}")
