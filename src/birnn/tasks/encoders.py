"""The sequence encoders every task chooses from by name, and their one width rule.

``hidden`` always means units per direction. A bidirectional model has
2·hidden features per step ([→h_t ; ←h_t]); a one-directional model gets
2·hidden units, so that both hand features of the same width to the head.

Bidirectional models are ``birnn.nn.BiRNN``; one-directional ones are torch's
own modules (trailing padding cannot reach a valid step of a left-to-right
reader; on varying lengths they run packed so that the final state is the one
after each sequence's last token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import fields, is_dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from birnn.nn import BiRNN
from birnn.spec import check_memory

MODELS = {
    "lstm": ("lstm", False),
    "bilstm": ("lstm", True),
    "gru": ("gru", False),
    "bigru": ("gru", True),
    "elman": ("rnn_tanh", False),
    "bielman": ("rnn_tanh", True),
}
_ONE_DIRECTION = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}


def check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}; got {model!r}")


def is_bidirectional(model: str) -> bool:
    return MODELS[model][1]


class Encoder(nn.Module):
    """``Encoder(model, input_size, hidden, layers=1, dropout=0.0)``.

    ``encoder(x (B, T, I), lengths (B,), initial=None) -> (out (B, T, 2·hidden), final)``;
    out is zero at padding; ``initial`` is a ``final`` of an earlier call with the same batch size.
    """

    def __init__(self, model: str, input_size: int, hidden: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        check_model(model)
        cell, self.bidirectional = MODELS[model]
        self.output_size = 2 * hidden
        if self.bidirectional:
            self.rnn: nn.Module = BiRNN(input_size, hidden, layers, cell, dropout=dropout)
        else:
            self.rnn = _ONE_DIRECTION[cell](input_size, 2 * hidden, layers, batch_first=True, dropout=dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, initial: Any = None) -> tuple[torch.Tensor, Any]:
        if self.bidirectional:
            out, final = self.rnn(x, lengths, initial)
            return out, final
        steps = x.shape[1]
        if bool((lengths == steps).all()):
            return self.rnn(x, initial)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed, initial)
        return pad_packed_sequence(out, batch_first=True, total_length=steps)[0], final


TRAINING_COPIES = 4  # training holds the weights, their gradients and Adam's two moments
SIZE_FIELDS = ("embedding", "hidden", "layers", "char_embedding", "char_hidden", "shape_embedding")
_COPIES: ContextVar[int] = ContextVar("birnn_model_copies", default=TRAINING_COPIES)


@contextmanager
def rebuilding() -> Iterator[None]:
    """Models built inside are trained ones being loaded: their weights alone must fit in memory."""
    token = _COPIES.set(1)
    try:
        yield
    finally:
        _COPIES.reset(token)


@contextmanager
def _initialisation_skipped() -> Iterator[None]:
    """``torch.nn.init``'s in-place initialisers return their tensor untouched inside: on the meta
    device only shapes count, and torch runs some of them there (``normal_``) through its
    compiler stack, whose first import takes seconds."""
    names = [name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")]
    saved = {name: getattr(nn.init, name) for name in names}
    try:
        for name in names:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def check_model_memory(build: Callable[[], nn.Module], config: Any = None, available: int | None = None) -> int:
    """The bytes ``build()``'s model needs (its parameters' bytes, the trained ones ``TRAINING_COPIES``
    times unless ``rebuilding``), counted on the meta device, which allocates nothing; ValueError naming the
    sizes of ``config`` (its ``SIZE_FIELDS``) when they exceed ``available`` (default: what the
    system says is free, ``spec.available_memory``)."""
    with torch.device("meta"), _initialisation_skipped():
        model = build()
    parameters = list(model.parameters())
    count = sum(p.numel() for p in parameters)
    trained = sum(p.numel() * p.element_size() for p in parameters if p.requires_grad)  # a frozen biLM is not
    needed = sum(p.numel() * p.element_size() for p in parameters) + (_COPIES.get() - 1) * trained
    named = [(f.name, getattr(config, f.name)) for f in fields(config)] if is_dataclass(config) else []
    sizes = [f"{name}={value:,}" for name, value in named if name in SIZE_FIELDS and value]
    held = "weights, gradients and Adam's two moments" if _COPIES.get() > 1 else "its weights"
    check_memory(needed, f"a model with {', '.join(sizes) or 'these sizes'} ({count:,} parameters; {held})", available)
    return needed


def seeded(seed: int, build: Callable[[], nn.Module], config: Any = None) -> Any:
    """``build()`` under torch's RNG seeded with ``seed``, leaving the caller's RNG state untouched;
    refused first when it would not fit in memory (``check_model_memory``, naming ``config``'s sizes)."""
    with torch.random.fork_rng(devices=[]):
        check_model_memory(build, config)
        torch.manual_seed(seed)
        return build()
