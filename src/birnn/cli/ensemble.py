"""`birnn ensemble RUN RUN ... --out DIR`: trained taggers or classifiers combined into one run."""

from __future__ import annotations

from pathlib import Path

import click

from birnn.cli.options import RUN


@click.command("ensemble")
@click.argument("runs", nargs=-1, required=True, type=RUN)
@click.option("--out", required=True, type=RUN, help="The new run directory (must not hold a run).")
def ensemble_command(runs: tuple[Path, ...], out: Path) -> None:
    """Combine the best weights of RUNS (taggers, or classifiers, with the same labels) into one
    model in --out that averages their scores (a product of experts; docs/training.md). Use --out
    with `birnn evaluate`, `birnn predict` or `birnn.load` like any run."""
    from birnn.train.ensemble import save_ensemble

    task = save_ensemble(runs, out)
    what = "taggers" if task.kind == "tagging" else "classifiers"
    click.echo(f"an ensemble of {len(task.members)} {what} in {out}")
