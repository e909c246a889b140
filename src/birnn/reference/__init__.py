"""The NumPy reference engine: bidirectional RNN/GRU/LSTM with backpropagation derived by hand.

Every cell is a pair of pure functions (forward step, backward step) whose
docstrings state the equations; ``BiRNN`` stacks them with variable lengths,
per-direction sizes and merges; ``gradcheck`` compares every gradient with
finite differences; ``from_torch``/``to_torch`` move weights to and from
PyTorch (imported only then). See docs/derivation.md for the derivation.
"""

from birnn.reference.bidirectional import BiRNN
from birnn.reference.gradcheck import gradcheck
from birnn.reference.heads import (
    dense_backward,
    dense_forward,
    first_last_positions,
    select_steps,
    select_steps_backward,
    softmax_cross_entropy,
)
from birnn.reference.layer import reverse_padded
from birnn.reference.optim import SGD, Adam, clip_by_global_norm

__all__ = [
    "SGD",
    "Adam",
    "BiRNN",
    "clip_by_global_norm",
    "dense_backward",
    "dense_forward",
    "first_last_positions",
    "gradcheck",
    "reverse_padded",
    "select_steps",
    "select_steps_backward",
    "softmax_cross_entropy",
]
