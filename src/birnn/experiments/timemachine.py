"""The Time Machine experiments: a character language model (and d2l's chapter-8 setting), and cloze.

- ``run_language_model``: train on the first ``max_tokens`` characters, hold out the
  ``heldout`` after them, and report training, held-out and *causal* perplexity (each
  prediction sees only its prefix): a bidirectional model's training perplexity collapses
  towards 1 while its causal perplexity shows it cannot predict.
- ``run_cloze``: fill masked characters or words from both sides; the last 10% of the text
  is held out. A left-to-right model gets as many recurrent parameters as the bidirectional
  one (``matched_hidden``) unless ``equal_parameters`` is off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from birnn.data.streams import windows
from birnn.data.timemachine import load_characters, load_words
from birnn.tasks import ClozeConfig, ClozeTask, LanguageModelTask, LMConfig
from birnn.tasks.cloze import masked_examples, matched_hidden
from birnn.tasks.encoders import is_bidirectional
from birnn.tasks.language_model import split_heldout
from birnn.train import TrainConfig, Trainer, distributed, evaluate, load_task, with_overrides
from birnn.train.device import resolve_device

Log = Callable[[str], Any]


def default_lr(model: str, optimizer: str) -> float:
    """d2l's SGD rates (2 for an LSTM, 1 for a BiLSTM, whose two directions add their gradients), 3e-3 for Adam."""
    if optimizer == "sgd":
        return 1.0 if is_bidirectional(model) else 2.0
    return 3e-3


@dataclass(frozen=True)
class LMRun:
    """Everything one language-model run needs; ``LMRun.d2l(model)`` is d2l's chapter-8 setting."""

    data: str = "timemachine"
    max_tokens: int = 10_000
    heldout: int = 2_000
    steps: int = 35
    model: LMConfig = field(default_factory=LMConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=20, lr=3e-3, clip=1.0))

    def __post_init__(self) -> None:
        if self.max_tokens < 100 or self.heldout < 0 or self.steps < 2:
            raise ValueError(
                f"max_tokens must be >= 100, heldout >= 0 and steps >= 2; got {self.max_tokens}, "
                f"{self.heldout}, {self.steps}"
            )

    @classmethod
    def d2l(cls, model: str) -> LMRun:
        """10,000 characters, batch 32, 35 steps, 256 units, 2 layers, one-hot, SGD (lr 2 or 1),
        clip 1, 500 epochs, sequential partitioning with the state carried across batches."""
        train = TrainConfig(epochs=500, batch_size=32, optimizer="sgd", lr=default_lr(model, "sgd"), clip=1.0,
                            shuffle=False)
        return cls(model=LMConfig.d2l(model), train=train)

    @classmethod
    def build(cls, preset: str | None = None, lr: float | None = None, **settings: Any) -> LMRun:
        """The plain run or a preset ("d2l"), with the given settings (by field name, None = not given);
        without ``lr`` the rate ``default_lr`` gives for the model and optimiser."""
        if preset not in (None, "d2l"):
            raise ValueError(f"preset must be None or 'd2l'; got {preset!r}")
        model = settings.get("model") or LMConfig().model
        run = with_overrides(cls.d2l(model) if preset == "d2l" else cls(), **settings)
        return with_overrides(run, lr=lr if lr is not None else default_lr(run.model.model, run.train.optimizer))

    def consistent(self) -> LMRun:
        """Sequential partitioning needs its batches in text order: shuffling off."""
        if self.model.partition == "sequential" and self.train.shuffle:
            return replace(self, train=replace(self.train, shuffle=False))
        return self


def epoch_line(epoch: int, row: dict[str, float]) -> str:
    """One log line per epoch of a language model."""
    held = f", held-out perplexity {row['dev_perplexity']:.2f}" if "dev_perplexity" in row else ""
    return (f"epoch {epoch}: training perplexity {math.exp(row['train_loss']):.2f}{held}, "
            f"{row['tokens_per_s']:,.0f} tokens/s")


def run_language_model(
    run: LMRun, out: str | Path, resume: bool = False, progress: bool = True, log: Log = print,
    device: str = "auto",
) -> dict[str, Any]:
    """Train (or continue) a character LM on ``device`` (auto | cpu | cuda | cuda:N); -> the
    perplexities and a greedy continuation."""
    where = distributed.rank_device(resolve_device(device))
    run = run.consistent()
    text, held_text = split_heldout(load_characters(run.data), run.max_tokens, run.heldout, run.steps)
    task = load_task(out, "checkpoint") if resume else LanguageModelTask.for_text(run.model, text)
    task.model.to(where)
    train, held = task.vocab.encode(text), task.vocab.encode(held_text)
    log(f"{len(train):,} training and {len(held):,} held-out characters")
    batches = task.epoch_examples(train, run.train.batch_size, run.steps, run.train.seed)
    trainer = Trainer(task, batches, windows(held, run.steps) or None, run.train, out, progress=progress,
                      on_epoch=lambda epoch, row: log(epoch_line(epoch, row)), log=log)
    summary = trainer.fit(resume=resume)
    task.model.eval()
    report = {
        "training perplexity (last epoch, as d2l reports it)": math.exp(summary["last"]["train_loss"]),
        "training perplexity (evaluated after training, each window from zero)":
            evaluate(task, windows(train, run.steps))["perplexity"],
        "causal training perplexity (prefix only)": task.causal_perplexity(train, run.steps),
    }
    if len(held) > run.steps:
        report["held-out perplexity"] = evaluate(task, windows(held, run.steps))["perplexity"]
        report["causal held-out perplexity (prefix only)"] = task.causal_perplexity(held, run.steps)
    report["time traveller ->"] = task.generate("time traveller", 50)
    return report


@dataclass(frozen=True)
class ClozeRun:
    """One cloze run: the task, windows of ``steps`` tokens masked ``copies`` times, training settings."""

    data: str = "timemachine"
    steps: int = 64
    copies: int = 2
    equal_parameters: bool = True
    model: ClozeConfig = field(default_factory=ClozeConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, batch_size=64, lr=3e-3))

    def __post_init__(self) -> None:
        if self.steps < 2 or self.copies < 1:
            raise ValueError(f"steps must be >= 2 and copies >= 1; got {self.steps}, {self.copies}")


def run_cloze(
    run: ClozeRun, out: str | Path, resume: bool = False, progress: bool = True, log: Log = print,
    device: str = "auto",
) -> dict[str, Any]:
    """Train a cloze model on ``device`` (auto | cpu | cuda | cuda:N); -> held-out masked-token
    accuracy and the parameter count."""
    where = distributed.rank_device(resolve_device(device))
    config = run.model
    tokens = list(load_characters(run.data)) if config.unit == "char" else load_words(run.data)
    if run.equal_parameters and not is_bidirectional(config.model):
        config = replace(config, hidden=matched_hidden(config.embedding, config.hidden))
    task = load_task(out, "checkpoint") if resume else ClozeTask.for_tokens(config, tokens)
    task.model.to(where)
    config = task.config
    ids = task.vocab.encode(tokens)
    cut = int(0.9 * len(ids))
    train = masked_examples(ids[:cut], task.mask_id, run.steps, config.rate, run.copies, config.seed)
    held = masked_examples(ids[cut:], task.mask_id, run.steps, config.rate, 1, config.seed + 1)
    line = lambda epoch, row: log(  # noqa: E731
        f"epoch {epoch}: train loss {row['train_loss']:.4f}, held-out accuracy {row.get('dev_accuracy', math.nan):.4f}"
        f", {row['tokens_per_s']:,.0f} tokens/s"
    )
    Trainer(task, train, held, run.train, out, progress=progress, on_epoch=line, log=log).fit(resume=resume)
    return {
        "unit": config.unit,
        "accuracy": evaluate(task, held)["accuracy"],
        "parameters": sum(p.numel() for p in task.model.parameters()),
    }
