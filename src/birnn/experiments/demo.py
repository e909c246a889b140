"""The main job: a bidirectional network is a learned forward–backward algorithm.

Sample tagged sequences from an HMM whose hidden states are the tags, compute
the Bayes-optimal taggers exactly — forward-only filtering (the best any
left-to-right tagger can do), forward–backward posterior decoding (the best
any tagger can do) and Viterbi — then train a unidirectional LSTM and a
BiLSTM of equal width with the trainer and see each approach its own optimum.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from birnn.hmm import HMM, casino
from birnn.tasks import TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer, evaluate


@dataclass(frozen=True)
class DemoConfig:
    """Defaults: 4 sticky states (stay 0.9), 8 symbols, each state favouring one symbol
    (+0.3 over a uniform floor), so that emissions are ambiguous and the future helps."""

    seed: int = 0
    states: int = 4
    symbols: int = 8
    length: int = 50
    stay: float = 0.9
    signature: float = 0.3
    train: int = 6000
    dev: int = 300
    test: int = 1000
    epochs: int = 10
    hidden: int = 32
    embedding: int = 16
    batch_size: int = 32
    lr: float = 3e-3
    use_casino: bool = False

    def __post_init__(self) -> None:
        if self.states < 2 or self.symbols < 2:
            raise ValueError(f"states and symbols must be >= 2; got {self.states} and {self.symbols}")
        if self.length < 2:
            raise ValueError(f"length must be >= 2; got {self.length}")
        if not 0 < self.stay < 1 or not 0 <= self.signature < 1:
            raise ValueError(f"stay must lie in (0, 1) and signature in [0, 1); got {self.stay}, {self.signature}")


def demo_hmm(config: DemoConfig) -> HMM:
    """Sticky states with ambiguous emissions: A = stay on the diagonal, the rest spread evenly;
    state k emits symbol k mod V with extra probability ``signature``, all symbols uniformly otherwise."""
    if config.use_casino:
        return casino()
    k, v = config.states, config.symbols
    transition = np.full((k, k), (1 - config.stay) / (k - 1))
    np.fill_diagonal(transition, config.stay)
    emission = np.full((k, v), (1 - config.signature) / v)
    emission[np.arange(k), np.arange(k) % v] += config.signature
    return HMM(np.full(k, 1 / k), transition, emission)


@dataclass
class DemoResult:
    rows: list[tuple[str, float]]  # (method, test accuracy)
    optimum: float  # posterior-decoding accuracy on test
    histories: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    dev_optima: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"{'method':<44} {'test accuracy':>13} {'gap to optimum':>15}"]
        for method, accuracy in self.rows:
            lines.append(f"{method:<44} {accuracy:>13.4f} {100 * (accuracy - self.optimum):>+14.2f} pt")
        return "\n".join(lines)

    def accuracy(self, prefix: str) -> float:
        return next(acc for method, acc in self.rows if method.startswith(prefix))


def _sentences(obs: np.ndarray, states: np.ndarray) -> list[tuple[list[str], list[str]]]:
    """Symbols as tokens, states as tags (both written as their numbers)."""
    return [([str(v) for v in o], [str(k) for k in s]) for o, s in zip(obs, states, strict=True)]


def _epoch_logger(name: str, log: Callable[[str], Any]) -> Callable[[int, dict[str, float]], None]:
    def line(epoch: int, row: dict[str, float]) -> None:
        log(f"{name} epoch {epoch}: train loss {row['train_loss']:.4f}, dev accuracy {row['dev_accuracy']:.4f}")

    return line


def run_demo(config: DemoConfig, out_dir: str | Path, progress: bool = True, log=print) -> DemoResult:
    """Everything the module docstring says; writes ``demo.png`` and one run directory per model."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hmm = demo_hmm(config)
    samples = {
        split: hmm.sample(n, config.length, seed=np.random.default_rng([config.seed, i]))
        for i, (split, n) in enumerate((("train", config.train), ("dev", config.dev), ("test", config.test)))
    }
    obs_test, states_test = samples["test"]
    filtered, smoothed = hmm.filter(obs_test), hmm.posterior(obs_test)
    viterbi_paths, _ = hmm.viterbi(obs_test)
    rows = [
        ("forward-only filtering (best left-to-right)", float((filtered.argmax(-1) == states_test).mean())),
        ("forward-backward posterior (best possible)", float((smoothed.argmax(-1) == states_test).mean())),
        ("Viterbi path", float((viterbi_paths == states_test).mean())),
    ]
    obs_dev, states_dev = samples["dev"]
    dev_optima = {
        "filter": float((hmm.filter(obs_dev).argmax(-1) == states_dev).mean()),
        "smoother": float((hmm.posterior(obs_dev).argmax(-1) == states_dev).mean()),
    }
    sentences = {split: _sentences(*samples[split]) for split in samples}
    train_config = TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed, clip=5.0
    )
    result = DemoResult(rows, rows[1][1], dev_optima=dev_optima)
    tasks = {}
    for name in ("lstm", "bilstm"):
        model = TaggerConfig(model=name, hidden=config.hidden, embedding=config.embedding, seed=config.seed)
        task = TaggingTask.for_data(model, sentences["train"])
        data = {split: task.encode(sentences[split], split) for split in sentences}
        log(f"training {name} ({sum(p.numel() for p in task.model.parameters()):,} parameters)")
        trainer = Trainer(
            task,
            data["train"],
            data["dev"],
            train_config,
            out_dir / name,
            progress=progress,
            on_epoch=_epoch_logger(name, log),
        )
        trainer.fit(resume=False, overwrite=True)
        result.histories[name] = trainer.history
        label = "LSTM tagger (left to right)" if name == "lstm" else "BiLSTM tagger (both directions)"
        result.rows.append((label, evaluate(task, data["test"])["accuracy"]))
        tasks[name] = task
    plot_demo(result, hmm, samples["test"], tasks, out_dir / "demo.png")
    (out_dir / "demo.json").write_text(json.dumps(summary(result), indent=1))
    return result


def plot_demo(result: DemoResult, hmm: HMM, test, tasks: dict[str, TaggingTask], path: Path) -> None:
    """Left: dev accuracy per epoch against the two optima. Right: P(true tag) on one test sequence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1, 2]})
    for name, color in (("lstm", "C1"), ("bilstm", "C0")):
        history = result.histories[name]
        left.plot([r["epoch"] for r in history], [r["dev_accuracy"] for r in history], "o-", color=color, label=name)
    left.axhline(result.dev_optima["filter"], color="C1", ls="--", label="optimum, forward only")
    left.axhline(result.dev_optima["smoother"], color="C0", ls="--", label="optimum, forward–backward")
    left.set(xlabel="epoch", ylabel="dev accuracy", title="learning curves")
    left.legend(fontsize=8)
    obs, states = test[0][:1], test[1][0]
    steps = np.arange(len(states))
    truth = states[:, None]
    smoothed = np.take_along_axis(hmm.posterior(obs)[0], truth, 1)[:, 0]
    filtered = np.take_along_axis(hmm.filter(obs)[0], truth, 1)[:, 0]
    network = {}
    for name, task in tasks.items():
        batch = task.collate(task.encode(_sentences(obs, states[None])))
        columns = [task.tags.stoi[str(k)] for k in states]  # tag ids are by frequency, not state number
        with torch.no_grad():
            network[name] = task.probabilities(batch)[0].numpy()[steps, columns]
    right.plot(steps, smoothed, color="C0", lw=2, label="forward–backward P(true tag | all)")
    right.plot(steps, network["bilstm"], color="C0", ls=":", label="BiLSTM")
    right.plot(steps, filtered, color="C1", lw=2, label="filter P(true tag | so far)")
    right.plot(steps, network["lstm"], color="C1", ls=":", label="LSTM")
    right.set(xlabel="position in one test sequence", ylabel="P(true tag)", ylim=(0, 1), title="one sequence")
    right.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def summary(result: DemoResult) -> dict[str, Any]:
    return {"rows": result.rows, "optimum": result.optimum, "dev_optima": result.dev_optima}
