"""`birnn demo`: the main job — a BiLSTM is a learned forward–backward algorithm, in numbers."""

from __future__ import annotations

from pathlib import Path

import click

from birnn.cli.options import POSITIVE, RUN, from_config
from birnn.experiments.demo import DemoConfig, run_demo
from birnn.train import with_overrides

_D = DemoConfig()


@click.command("demo")
@from_config(_D, "seed", type=int, help="Seed of data and models.")
@from_config(_D, "states", type=click.IntRange(min=2), help="Hidden states = tags.")
@from_config(_D, "symbols", type=click.IntRange(min=2), help="Observed symbols.")
@from_config(_D, "length", type=click.IntRange(min=2), help="Sequence length.")
@from_config(_D, "epochs", type=POSITIVE, help="Training epochs.")
@from_config(_D, "train", "--train-size", type=POSITIVE, help="Training sequences.")
@from_config(_D, "use_casino", "--casino", help="Use Durbin's dishonest casino as the HMM.")
@click.option("--out", default=Path("demo_out"), show_default=True, type=RUN)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo_command(out: Path, quiet: bool, **settings) -> None:
    """Sample tagged data from an HMM, compute the Bayes-optimal taggers, train an LSTM and a
    BiLSTM, and print how close each gets to its optimum (writes OUT/demo.png, OUT/demo.json)."""
    result = run_demo(with_overrides(_D, **settings), out, progress=not quiet, log=click.echo)
    click.echo("")
    click.echo(result.table())
    click.echo(f"\nwrote {out / 'demo.png'} and {out / 'demo.json'}")
