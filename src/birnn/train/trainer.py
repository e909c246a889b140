"""One trainer for every task: loop, progress, metrics log, plots, checkpoints, exact resume.

It knows nothing about tasks. A task provides ``model``, ``loss(batch) -> scalar
tensor``, ``evaluate_batch(batch)`` (whatever its metrics need from one batch),
``metrics(outcomes) -> dict`` and ``describe() -> dict`` (what a checkpoint must
hold to rebuild it: configuration and vocabularies); it may also provide
``start_epoch(epoch)``, called before each training epoch (a language model that
carries its state across batches resets it there). Batches go to the model's device
(``device.to_device``): move the task's model before training to train elsewhere.

Progress bars are drawn only on a terminal; a redirected log gets the one line
per epoch that ``on_epoch`` prints.

A fit holds an exclusive lock on its run directory (``run_dir/.lock``, an ``flock`` that the
kernel drops when the process dies, so a killed run never leaves a stale lock); a second fit on
the same directory raises RunLocked. Every file it writes is replaced atomically.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from birnn.data.batching import batch_indices, collate
from birnn.train import checkpoint, distributed
from birnn.train.config import TrainConfig
from birnn.train.device import model_device, to_device


class Task(Protocol):
    model: torch.nn.Module

    def loss(self, batch: Any) -> torch.Tensor: ...

    def evaluate_batch(self, batch: Any) -> Any: ...

    def metrics(self, outcomes: list[Any]) -> dict[str, float]: ...

    def describe(self) -> dict[str, Any]: ...


class RunExists(ValueError):
    """The run directory already holds a run that neither resume nor overwrite was asked for."""


class RunLocked(ValueError):
    """Another training (this process or another) holds the run directory."""


class ResumeMismatch(ValueError):
    """``resume`` with a training setting that cannot change in the middle of a run."""


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


# A resumed run continues the same batches (batch_size, seed, bucket, shuffle) with the same optimiser
# state: these settings cannot change; the others (epochs, lr, lr_decay, clip, patience, monitor,
# momentum) may, and every change is reported.
FIXED_ON_RESUME = ("optimizer", "batch_size", "seed", "bucket", "shuffle")
OUTPUTS = ("metrics.csv", "summary.json", "curves.png")


Example = Sequence[Any]  # (input ids, target ids, ...): the first item's length is the example's length
EpochExamples = Callable[[int], Sequence[Example]]


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``run_dir`` (only on the main rank: the others write nothing)."""
    if not distributed.is_main():
        yield
        return
    import fcntl  # POSIX; imported here so that inference (serve) still imports on Windows

    descriptor = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 256).decode(errors="replace").strip() or "a process that gave no pid"
            raise RunLocked(
                f"{run_dir} is in use by another training ({holder}); "
                "wait for it to end or choose another run directory"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        yield
    finally:
        os.close(descriptor)  # drops the lock


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside the block take effect when it ends (main thread only).

    Python runs signal handlers in the main thread whichever thread the kernel chose, so holding
    them there is enough; the first signal held is raised again, to the handler that was in place.
    """
    wanted = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or None in map(signal.getsignal, wanted):
        yield
        return
    arrived: list[int] = []
    previous = {number: signal.signal(number, lambda received, frame: arrived.append(received)) for number in wanted}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if arrived:
            signal.raise_signal(arrived[0])


def batcher(task: Task) -> Callable[..., Any]:
    """The task's own ``collate`` when it has one (examples with more than ids), else ``data.collate``."""
    own: Callable[..., Any] | None = getattr(task, "collate", None)
    return own if own is not None else collate


def evaluate(task: Task, examples: Sequence[Example], batch_size: int = 64) -> dict[str, float]:
    """The task's metrics on ``examples`` (model in eval mode, no autograd)."""
    batches = [
        batcher(task)([examples[i] for i in index])
        for index in batch_indices([len(example[0]) for example in examples], batch_size, None)
    ]
    was_training = task.model.training
    task.model.eval()
    with torch.no_grad():
        device = model_device(task.model)
        outcomes = [task.evaluate_batch(to_device(batch, device)) for batch in batches]
    task.model.train(was_training)
    return task.metrics(outcomes)


class Trainer:
    """``Trainer(task, train, dev, config, run_dir).fit(resume=False) -> summary``.

    run_dir receives ``checkpoint/`` (every epoch), ``best/`` (best dev score),
    ``metrics.csv`` (one row per epoch), ``summary.json`` and ``curves.png``.
    ``train`` is a sequence of examples, or a function ``epoch -> examples``
    when every epoch cuts the data anew (d2l's random window offsets); it must
    depend only on the epoch, so that a resumed run sees the same data.
    Under torchrun (``distributed.setup_from_env``) ``config.batch_size`` is the
    global batch: each rank trains on its share and DDP averages the gradients.
    """

    def __init__(
        self,
        task: Task,
        train: Sequence[Example] | EpochExamples,
        dev: Sequence[Example] | None,
        config: TrainConfig,
        run_dir: str | Path,
        progress: bool = True,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not callable(train) and not train:
            raise ValueError("train holds no examples")
        self.task, self.train_data, self.dev_examples = task, train, dev
        self.config, self.run_dir, self.progress, self.on_epoch = config, Path(run_dir), progress, on_epoch
        self.log = log  # notices such as settings changed on resume; None: warnings.warn
        parameters = [p for p in task.model.parameters() if p.requires_grad]
        fused = all(p.dtype in (torch.float32, torch.float64) for p in parameters)  # one kernel per step
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(parameters, lr=config.lr, fused=fused)
        else:
            self.optimizer = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, fused=fused)
        self.history: list[dict[str, float]] = []
        self.best: float | None = None
        self.epoch = 0
        self.step = 0
        self._plotted = -math.inf
        self._collate = batcher(task)
        self.monitor = getattr(task, "monitor", "accuracy") if config.monitor == "auto" else config.monitor

    # ----- state ---------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "task": self.task.describe(),
            "train_config": self.config.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best": self.best,
            "monitor": self.monitor,
            "history": self.history,
        }

    def _restore(self) -> None:
        directory = self.run_dir / "checkpoint"
        notices = self._compare_config(checkpoint.read_state(directory))
        payload = checkpoint.load(directory, self.task.model, self.optimizer, restore_rng=True)
        self.epoch, self.step, self.best = payload["epoch"], payload["step"], payload["best"]
        self.history = payload["history"]
        if self.config.optimizer == "sgd":  # load_state_dict brought back the saved momentum
            for group in self.optimizer.param_groups:
                group["momentum"] = self.config.momentum
        saved_monitor = payload.get("monitor", self.monitor)
        if saved_monitor != self.monitor:
            scores = [row[f"dev_{self.monitor}"] for row in self.history if f"dev_{self.monitor}" in row]
            self.best = max(scores) if scores else None
            notices.append(
                f"the monitored dev metric is now {self.monitor} (was {saved_monitor}): the best score so far, "
                f"{self.best}, is taken from the history, and best/ keeps the weights chosen by {saved_monitor} "
                "until an epoch beats it"
            )
        for notice in notices:
            self._notify(notice)

    def _compare_config(self, state: dict[str, Any]) -> list[str]:
        """Raise ResumeMismatch for a changed FIXED_ON_RESUME setting; describe the other changes."""
        saved = TrainConfig.from_dict(state.get("train_config") or {})
        changed = [
            (f.name, getattr(saved, f.name), getattr(self.config, f.name))
            for f in fields(TrainConfig)
            if getattr(saved, f.name) != getattr(self.config, f.name)
        ]
        fixed = [f"{name}={new!r} (the run was trained with {name}={old!r})" for name, old, new in changed
                 if name in FIXED_ON_RESUME]
        if fixed:
            raise ResumeMismatch(
                f"{self.run_dir}: cannot resume with {'; '.join(fixed)}; {', '.join(FIXED_ON_RESUME)} "
                "must stay as they were (or start a new run)"
            )
        if not changed:
            return []
        return [f"resuming {self.run_dir} with " + ", ".join(f"{n} {old!r} -> {new!r}" for n, old, new in changed)]

    def _notify(self, message: str) -> None:
        if self.log is None:
            warnings.warn(message, stacklevel=4)
        else:
            self.log(message)

    def _last_good(self) -> str:
        kept = self.run_dir / "checkpoint"
        return f"the last good checkpoint is {kept}" if checkpoint.exists(kept) else "no checkpoint was written"

    def _stopped(self) -> str:
        kept = self.run_dir / "checkpoint"
        if not (distributed.is_main() and checkpoint.exists(kept)):
            return "training stopped; no checkpoint was written"
        epoch = checkpoint.read_state(kept).get("epoch")
        return f"training stopped; {kept} holds epoch {epoch} of {self.config.epochs} (continue with resume, --resume)"

    # ----- the loop ------------------------------------------------------------------------------
    def fit(self, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
        """Train to ``config.epochs`` epochs.

        A run directory that already holds a run is continued with ``resume``, replaced
        with ``overwrite`` (its checkpoints are deleted first), and otherwise refused; one that
        another fit is using raises RunLocked. ``resume`` refuses a changed FIXED_ON_RESUME
        setting (ResumeMismatch) and reports every other change through ``log``.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with run_lock(self.run_dir):
            held = checkpoint.exists(self.run_dir / "checkpoint")
            if held and not (resume or overwrite):
                raise RunExists(f"{self.run_dir} already holds a run; resume it or choose another run directory")
            if overwrite and not resume and distributed.is_main():
                for name in ("checkpoint", "best"):
                    checkpoint.remove(self.run_dir / name)
            if distributed.is_main():
                for name in ("checkpoint", "best"):  # what a killed save left (the lock is ours)
                    checkpoint.tidy(self.run_dir / name)
                for leftover in self.run_dir.glob("*.tmp-*"):  # of a killed write_atomic: never the file itself
                    if leftover.is_file() and leftover.name.split(".tmp-")[0] in OUTPUTS:
                        leftover.unlink()
            model = self.task.model
            with torch.random.fork_rng(devices=[]):
                if resume and held:
                    self._restore()
                else:
                    torch.manual_seed(self.config.seed)
                self.task.model = distributed.wrap(model)  # the task's forward passes go through DDP
                try:
                    while self.epoch < self.config.epochs and not self._patience_exhausted():
                        self._run_epoch(model)
                except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM under the CLI: say what is kept
                    exc.args = (self._stopped(),)
                    raise
                finally:
                    self.task.model = model
            if distributed.is_main() and self.history:
                plot_curves(self.history, self.run_dir / "curves.png", self.monitor)
        return self._summary()

    def _patience_exhausted(self) -> bool:
        patience = self.config.patience
        if patience is None or not self.history or self.best is None:
            return False
        monitor = f"dev_{self.monitor}"
        # best only rises on strict improvement, so its first occurrence is the epoch that set it
        best_epoch = next(row["epoch"] for row in self.history if row.get(monitor) == self.best)
        return self.history[-1]["epoch"] - best_epoch >= patience

    def _run_epoch(self, model: torch.nn.Module) -> None:
        config, main, device = self.config, distributed.is_main(), model_device(model)
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * config.lr_decay**self.epoch
        examples = self.train_data(self.epoch) if callable(self.train_data) else self.train_data
        if not examples:
            raise ValueError(f"train holds no examples in epoch {self.epoch + 1}")
        lengths = [len(example[0]) for example in examples]
        seed = config.seed if config.shuffle else None
        batches = batch_indices(lengths, config.batch_size, seed, self.epoch, config.bucket)
        if hasattr(self.task, "start_epoch"):
            self.task.start_epoch(self.epoch)
        self.task.model.train()
        started, tokens, total_loss = time.perf_counter(), 0, 0.0
        bar = tqdm(
            batches,
            desc=f"epoch {self.epoch + 1}/{config.epochs}",
            disable=not (self.progress and main and sys.stderr.isatty()),
            leave=False,
        )
        for index in bar:
            batch = to_device(self._collate([examples[i] for i in distributed.shard(index)]), device)
            loss = self.task.loss(batch)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at step {self.step + 1} (epoch {self.epoch + 1}); training stopped, "
                    f"{self._last_good()} (try a smaller learning rate)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            self.optimizer.step()
            self.step += 1
            tokens += batch.tokens
            total_loss += loss.item() * batch.tokens
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens / (time.perf_counter() - started):,.0f}")
        seconds = time.perf_counter() - started
        bad = checkpoint.non_finite(model)  # the last step's update; every rank holds the same weights
        if bad:
            raise TrainingDiverged(
                f"weights became NaN or infinite ({', '.join(bad)}) by step {self.step} (epoch {self.epoch + 1}); "
                f"training stopped, {self._last_good()} (try a smaller learning rate)"
            )
        self.epoch += 1
        row = {
            "epoch": self.epoch,
            "step": self.step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": total_loss / tokens,
            "tokens": tokens,  # this rank's share under torchrun
            "tokens_per_s": tokens / seconds,
            "seconds": seconds,
        }
        if self.dev_examples:
            row |= {f"dev_{k}": v for k, v in evaluate(self.task, self.dev_examples).items()}
        self.history.append(row)
        score = row.get(f"dev_{self.monitor}")
        improved = score is not None and (self.best is None or score > self.best)
        if improved:
            self.best = score
        if not main:
            return
        with signals_deferred():  # a stop asked for now waits until the epoch is saved
            checkpoint.save(self.run_dir / "checkpoint", model, self._state(), self.optimizer)
            if improved:
                checkpoint.save(self.run_dir / "best", model, self._state())
            self._write_logs(row)
        if self.on_epoch is not None:
            self.on_epoch(self.epoch, row)

    # ----- outputs -------------------------------------------------------------------------------
    def _write_logs(self, row: dict[str, float]) -> None:
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=list(self.history[0].keys()), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.history)  # rewritten whole: stays consistent after a resume
        checkpoint.write_atomic(self.run_dir / "metrics.csv", table.getvalue().encode())
        checkpoint.write_atomic(self.run_dir / "summary.json", json.dumps(self._summary(), indent=1).encode())
        # the plot costs ~0.3 s: redraw at most every 15 s here, and once more when fit ends
        if time.perf_counter() - self._plotted > 15:
            plot_curves(self.history, self.run_dir / "curves.png", self.monitor)
            self._plotted = time.perf_counter()

    def _summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"epochs": self.epoch, "steps": self.step, "best_dev": self.best, "last": last}


def plot_curves(history: list[dict[str, float]], path: Path, monitor: str = "accuracy") -> None:
    """PNG with the training loss and the dev metric per epoch, replacing ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [row["train_loss"] for row in history], marker="o")
    left.set(xlabel="epoch", ylabel="train loss per token")
    key = f"dev_{monitor}"
    if any(key in row for row in history):
        right.plot(epochs, [row.get(key, math.nan) for row in history], marker="o", color="C1")
    right.set(xlabel="epoch", ylabel=f"dev {monitor}")
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    checkpoint.write_atomic(path, image.getvalue())
