"""`birnn hmm …`: the occasionally dishonest casino, Baum–Welch fitting and Viterbi decoding."""

from __future__ import annotations

from pathlib import Path

import click

from birnn.cli.options import FILE, POSITIVE
from birnn.data import read_symbol_sequences
from birnn.experiments.casino import casino_report
from birnn.hmm import HMM


@click.group(help="Hidden Markov models: forward–backward, Viterbi, Baum–Welch.")
def group() -> None:
    pass


@group.command("casino")
@click.option("--rolls", default=300, show_default=True, type=POSITIVE, help="Die rolls to sample.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed of the sample.")
@click.option("--plot", type=FILE, help="Write a PNG of P(loaded) here.")
def casino_command(rolls: int, seed: int, plot: Path | None) -> None:
    """Durbin's occasionally dishonest casino: sample rolls, decode the die three ways."""
    click.echo(casino_report(rolls, seed, plot))


@group.command("fit")
@click.argument("data", type=FILE)
@click.option("--states", required=True, type=POSITIVE, help="Number of hidden states K.")
@click.option("--out", default=Path("model.json"), show_default=True, type=FILE, help="Fitted HMM (JSON).")
@click.option("--iters", default=100, show_default=True, type=POSITIVE, help="Max EM iterations.")
@click.option("--tol", default=1e-4, show_default=True, type=float, help="Stop when log p gains less.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random initial parameters.")
def fit_command(data: Path, states: int, out: Path, iters: int, tol: float, seed: int) -> None:
    """Fit an HMM to DATA (one sequence of integer symbols per line) by Baum–Welch; save JSON."""
    hmm, history = HMM.fit(read_symbol_sequences(data), states, n_iter=iters, tol=tol, seed=seed)
    hmm.save(out)
    click.echo(f"{len(history)} log-likelihoods: {history[0]:.3f} -> {history[-1]:.3f}")
    click.echo(f"wrote {out}")


@group.command("decode")
@click.argument("model", type=FILE)
@click.argument("data", type=FILE)
def decode_command(model: Path, data: Path) -> None:
    """Print the Viterbi state path of every sequence in DATA under MODEL (JSON), one line each."""
    if not model.is_file():
        raise FileNotFoundError(f"{model}: no such file")
    hmm = HMM.load(model)
    for number, sequence in enumerate(read_symbol_sequences(data), start=1):
        if sequence.max() >= hmm.n_symbols:
            raise ValueError(f"{data}:{number}: symbol {int(sequence.max())}; the model knows [0, {hmm.n_symbols})")
        path, _ = hmm.viterbi(sequence)
        click.echo(" ".join(str(s) for s in path))
