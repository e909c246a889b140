"""The NumPy engine learns on its own, in the textbook layout (outputs at the first and last step).

Task with an exactly known optimum: tokens x_0..x_{T-1} uniform over V symbols;
the output at t = 0 must name x_{T-1}, the output at t = T-1 must name x_0.
A bidirectional model can reach 100% on both; a left-to-right model at t = 0
has seen only x_0, which is independent of x_{T-1}, so its best accuracy there
is exactly 1/V.
"""

from __future__ import annotations

import numpy as np
import pytest

from birnn.reference import (
    Adam,
    BiRNN,
    dense_backward,
    dense_forward,
    first_last_positions,
    select_steps,
    select_steps_backward,
    softmax_cross_entropy,
)

V, T, H = 4, 6, 8


def batch(rng, n):
    tokens = rng.integers(0, V, size=(n, T))
    x = np.eye(V)[tokens]
    targets = np.stack([tokens[:, -1], tokens[:, 0]], axis=1)  # (n, 2): first step, last step
    return x, targets


def train(forward_only: bool, steps: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    hidden = 2 * H if forward_only else H  # equal width of what the head reads
    model = BiRNN(V, hidden, cell="lstm", backward_hidden_size=1 if forward_only else H, seed=seed)
    width = hidden if forward_only else 2 * H
    head = {"weight": rng.uniform(-0.3, 0.3, (V, width)), "bias": np.zeros(V)}
    params = model.params | {f"head.{k}": v for k, v in head.items()}
    optimiser = Adam(params, lr=0.03, clip=5.0)

    def predict(x, targets):
        lengths = np.full(len(x), T)
        out = model.forward(x, lengths)
        positions = first_last_positions(lengths)
        features = select_steps(out, positions)[..., :width]
        logits, cache = dense_forward(features, head["weight"], head["bias"])
        return out, positions, logits, cache

    for _ in range(steps):
        x, targets = batch(rng, 64)
        out, positions, logits, cache = predict(x, targets)
        _, d_logits = softmax_cross_entropy(logits, targets)
        d_features, d_weight, d_bias = dense_backward(d_logits, cache)
        d_selected = np.zeros((*d_features.shape[:2], out.shape[-1]))
        d_selected[..., :width] = d_features
        _, grads = model.backward(select_steps_backward(d_selected, positions, T))
        optimiser.step(grads | {"head.weight": d_weight, "head.bias": d_bias})
        head["weight"], head["bias"] = params["head.weight"], params["head.bias"]
    x, targets = batch(np.random.default_rng(seed + 100), 2000)
    logits = predict(x, targets)[2]
    return (logits.argmax(-1) == targets).mean(axis=0)  # accuracy at (first, last) step


def test_bidirectional_learns_both_ends_and_forward_only_cannot():
    bi_first, bi_last = train(forward_only=False)
    uni_first, uni_last = train(forward_only=True)
    assert bi_first >= 0.95 and bi_last >= 0.95
    assert uni_last >= 0.95  # the past is visible to a left-to-right reader
    assert uni_first == pytest.approx(1 / V, abs=0.04)  # chance: the future is not
