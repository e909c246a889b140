"""Optional JAX peers of ``bench_birnn.py``: Keras 3 (JAX backend) and Flax ``Bidirectional``.

Each peer returns a pair of callables ``(train, infer)`` that run one jit-compiled
step and block until its result is ready:

- train: ``jax.value_and_grad`` of ``output.sum()`` with respect to the parameters
  and the input ``x`` — the same work as torch's ``fn(x).sum().backward()`` with
  ``x.requires_grad``; no optimizer update on either side;
- infer: the forward pass alone.

Keras runs its layers through ``stateless_call`` inside ``jax.jit`` rather than
``train_on_batch``: the latter adds a loss, an optimizer update and Keras' own
step bookkeeping, none of which the torch rows pay. Variable lengths go in as
Keras' ``mask`` (B, T) and as Flax's ``seq_lengths`` (B,).

Importing this module sets ``KERAS_BACKEND=jax`` unless it is already set; it must
happen before the first ``import keras`` of the process (the benchmark imports
keras nowhere else). Threads: XLA:CPU sizes its intra-op pool to the cores the
process may use (``os.sched_getaffinity``), the same count torch uses by default,
so both sides run on the same cores; ``describe`` reports any mismatch.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

Step = Callable[[], None]
Peer = tuple[Step, Step]

KERAS_LABEL = "keras 3 (jax) Bidirectional"
FLAX_LABEL = "flax Bidirectional"


def describe(torch_threads: int) -> str:
    """One line: JAX peer versions (or "not installed") and the threads JAX and torch use."""
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for name in ("jax", "flax", "keras"):
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} not installed")
    cores = len(os.sched_getaffinity(0))
    note = f"{', '.join(versions)}; XLA:CPU on {cores} cores, torch {torch_threads} threads"
    return note if cores == torch_threads else note + " (mismatch: use torch.set_num_threads or taskset)"


def _steps(apply: Callable, params: object, x: np.ndarray, extra: object) -> Peer:
    """Jitted train and inference steps of ``apply(params, x, extra) -> (B, T, D)``."""
    import jax

    grad = jax.jit(jax.value_and_grad(lambda p, x, e: apply(p, x, e).sum(), argnums=(0, 1)))
    forward = jax.jit(apply)
    x = jax.numpy.asarray(x)

    def train() -> None:
        jax.block_until_ready(grad(params, x, extra))

    def infer() -> None:
        jax.block_until_ready(forward(params, x, extra))

    for _ in range(2):  # compile, then one warm run
        train()
        infer()
    return train, infer


def keras_peer(cell: str, c: dict, x: np.ndarray, lengths: np.ndarray | None) -> Peer | str:
    """Keras 3 ``Bidirectional(LSTM/GRU/SimpleRNN(H, return_sequences=True))`` × L on JAX, or why skipped."""
    try:
        import keras
    except ImportError:
        return "skipped: not installed"
    if keras.backend.backend() != "jax":
        return f"skipped: keras imported with backend {keras.backend.backend()!r} before KERAS_BACKEND=jax"
    import jax.numpy as jnp

    layer_cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn_tanh": keras.layers.SimpleRNN}[cell]
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Bidirectional(layer_cls(c["H"], return_sequences=True)) for _ in range(c["L"])]
    mask = None if lengths is None else jnp.asarray(np.arange(c["T"])[None, :] < lengths[:, None])  # (B, T)
    h = jnp.asarray(x)
    for layer in layers:  # builds the variables
        h = layer(h, mask=mask)
    params = [[v.value for v in layer.trainable_variables] for layer in layers]
    frozen = [[v.value for v in layer.non_trainable_variables] for layer in layers]

    def apply(params, x, mask):
        for layer, trainable, non_trainable in zip(layers, params, frozen, strict=True):
            x, _ = layer.stateless_call(trainable, non_trainable, x, mask=mask)
        return x

    return _steps(apply, params, x, mask)


def flax_peer(cell: str, c: dict, x: np.ndarray, lengths: np.ndarray | None) -> Peer | str:
    """Flax linen ``Bidirectional(RNN(cell), RNN(cell))`` × L with ``seq_lengths``, or why skipped."""
    try:
        import flax.linen as fnn
        import jax
    except ImportError:
        return "skipped: not installed"
    cell_cls = {"lstm": fnn.OptimizedLSTMCell, "gru": fnn.GRUCell, "rnn_tanh": fnn.SimpleCell}[cell]

    class Stack(fnn.Module):
        @fnn.compact
        def __call__(self, x, seq_lengths):
            for _ in range(c["L"]):
                x = fnn.Bidirectional(fnn.RNN(cell_cls(c["H"])), fnn.RNN(cell_cls(c["H"])))(x, seq_lengths=seq_lengths)
            return x

    model = Stack()
    seq_lengths = None if lengths is None else jax.numpy.asarray(lengths)
    params = model.init(jax.random.key(0), jax.numpy.asarray(x), seq_lengths)
    return _steps(model.apply, params, x, seq_lengths)


def jax_peers(cell: str, c: dict, x: np.ndarray, lengths: np.ndarray | None) -> dict[str, Peer | str]:
    """label -> (train, infer) steps, or a note why the peer is skipped; ``lengths`` None when all equal T."""
    return {KERAS_LABEL: keras_peer(cell, c, x, lengths), FLAX_LABEL: flax_peer(cell, c, x, lengths)}
