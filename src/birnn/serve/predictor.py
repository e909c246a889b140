"""``load(run_dir)`` and ``Predictor``: a trained task behind a list-in, list-out interface.

``predict`` and ``predict_proba`` take a list of token lists of any lengths, batch
them by length (less padding, ``batched.SortedBatches``), run under ``torch.inference_mode`` on
the model's device with ``threads`` intra-op threads, and return one result per input, in input order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from birnn.serve.batched import SortedBatches
from birnn.train import load_task
from birnn.train.device import model_device, resolve_device, to_device
from birnn.train.trainer import batcher


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside, restored after (None: unchanged)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Predictor(SortedBatches):
    """``Predictor(task, batch_size=256, threads=None)``; ``.task`` is the trained task itself (e.g. a
    language model's ``generate`` or a cloze model's ``fill``); batches go to the model's device."""

    def __init__(self, task: Any, batch_size: int = 256, threads: int | None = None) -> None:
        super().__init__(batch_size)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an integer >= 1; got {threads!r}")
        self.task, self.threads = task, threads
        self.task.model.eval()

    @property
    def kind(self) -> str:
        return self.task.kind

    @property
    def labels(self) -> list[str]:
        return list(self.task.labels)

    def tokenize(self, text: str) -> list[str]:
        """Raw text cut as the task cuts it (a classifier's ``tokenizer``)."""
        return self.task.tokenize(text)

    def _predict_batch(self, method: str, sentences: list[list[str]]) -> list[Any]:
        if not hasattr(self.task, method):
            raise TypeError(f"a {self.kind} model has no {method}()")
        batch = batcher(self.task)([self.task.encode_input(tokens) for tokens in sentences])
        with torch_threads(self.threads), torch.inference_mode():
            return getattr(self.task, method)(to_device(batch, model_device(self.task.model)))


def load(run_dir: str | Path, which: str = "best", batch_size: int = 256, threads: int | None = None,
         device: str = "cpu") -> Predictor:
    """The trained model of a run directory (``best`` weights, or ``checkpoint``) on ``device``
    ("auto" | "cpu" | "cuda" | "cuda:N"), ready to predict."""
    task = load_task(run_dir, which, device=resolve_device(device))
    return Predictor(task, batch_size, threads)
