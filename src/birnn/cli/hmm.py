"""`birnn hmm …`: the occasionally dishonest casino, Baum–Welch fitting and Viterbi decoding."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from birnn.hmm import HMM, casino
from birnn.hmm.report import accuracy, aligned_blocks, plot_state_probability


@click.group(help="Hidden Markov models: forward–backward, Viterbi, Baum–Welch.")
def group() -> None:
    pass


@group.command("casino")
@click.option("--rolls", default=300, show_default=True, type=click.IntRange(min=1), help="Die rolls to sample.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed of the sample.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG of P(loaded) here.")
def casino_command(rolls: int, seed: int, plot: Path | None) -> None:
    """Durbin's occasionally dishonest casino: sample rolls, decode the die three ways."""
    hmm = casino()
    obs, states = hmm.sample(1, rolls, seed=seed)
    obs, states = obs[0], states[0]
    smoothed = hmm.posterior(obs)
    filtered = hmm.filter(obs)
    viterbi_path, _ = hmm.viterbi(obs)
    posterior_path = smoothed.argmax(-1)
    die = np.array(["F", "L"])
    rows = [
        ("Rolls", "".join(str(v + 1) for v in obs)),
        ("Die", "".join(die[states])),
        ("Viterbi", "".join(die[viterbi_path])),
        ("Posterior", "".join(die[posterior_path])),
    ]
    click.echo(aligned_blocks(rows))
    click.echo("")
    click.echo(f"log p(rolls)                            {hmm.log_likelihood(obs):10.3f}")
    click.echo(f"accuracy, Viterbi path                  {accuracy(viterbi_path, states):10.3f}")
    click.echo(f"accuracy, posterior decoding (fwd–bwd)  {accuracy(posterior_path, states):10.3f}")
    click.echo(f"accuracy, filtering (forward only)      {accuracy(filtered.argmax(-1), states):10.3f}")
    if plot is not None:
        plot_state_probability(plot, smoothed, filtered, states)
        click.echo(f"wrote {plot}")


def read_sequences(path: Path) -> list[np.ndarray]:
    """One sequence of whitespace-separated non-negative integer symbols per non-blank line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    sequences = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        bad = next((token for token in tokens if not token.isdigit()), None)
        if bad is not None:
            raise ValueError(f"{path}:{number}: expected non-negative integer symbols; got {bad!r}")
        sequences.append(np.array([int(token) for token in tokens], dtype=np.int64))
    if not sequences:
        raise ValueError(f"{path}: no sequences (expected one line of symbols per sequence)")
    return sequences


_DATA = click.Path(dir_okay=False, path_type=Path)


@group.command("fit")
@click.argument("data", type=_DATA)
@click.option("--states", required=True, type=click.IntRange(min=1), help="Number of hidden states K.")
@click.option("--out", default=Path("model.json"), show_default=True, type=_DATA, help="Fitted HMM (JSON).")
@click.option("--iters", default=100, show_default=True, type=click.IntRange(min=1), help="Max EM iterations.")
@click.option("--tol", default=1e-4, show_default=True, type=float, help="Stop when log p gains less.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random initial parameters.")
def fit_command(data: Path, states: int, out: Path, iters: int, tol: float, seed: int) -> None:
    """Fit an HMM to DATA (one sequence of integer symbols per line) by Baum–Welch; save JSON."""
    sequences = read_sequences(data)
    hmm, history = HMM.fit(sequences, states, n_iter=iters, tol=tol, seed=seed)
    hmm.save(out)
    click.echo(f"{len(history)} log-likelihoods: {history[0]:.3f} -> {history[-1]:.3f}")
    click.echo(f"wrote {out}")


@group.command("decode")
@click.argument("model", type=_DATA)
@click.argument("data", type=_DATA)
def decode_command(model: Path, data: Path) -> None:
    """Print the Viterbi state path of every sequence in DATA under MODEL (JSON), one line each."""
    if not model.is_file():
        raise FileNotFoundError(f"{model}: no such file")
    hmm = HMM.load(model)
    for number, sequence in enumerate(read_sequences(data), start=1):
        if sequence.max() >= hmm.n_symbols:
            raise ValueError(
                f"{data}: sequence {number} has symbol {int(sequence.max())}; the model knows [0, {hmm.n_symbols})"
            )
        path, _ = hmm.viterbi(sequence)
        click.echo(" ".join(str(s) for s in path))
