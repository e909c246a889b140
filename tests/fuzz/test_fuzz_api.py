"""The public API on odd shapes, dtypes, lengths, NaN and inf: a clean result or a ValueError/TypeError
naming an argument -- never another exception, and never NaN from finite input."""

from __future__ import annotations

import numpy as np
import torch
from _fuzz import FUZZ, clean_or_named
from hypothesis import given
from hypothesis import strategies as st

from birnn import dp
from birnn.hmm import HMM
from birnn.nn import CRF, BiRNN, reverse_padded

_DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.bool])
_SPECIAL = st.sampled_from([0.0, 1.0, -1e30, 1e30, float("inf"), -float("inf"), float("nan")])


@st.composite
def tensors(draw, shape) -> torch.Tensor:
    """A tensor of ``shape``: random values, some replaced by extremes, in some dtype."""
    values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(size=shape) * draw(st.sampled_from([1, 50]))
    if values.size and draw(st.booleans()):
        flat = values.reshape(-1)
        for index in draw(st.lists(st.integers(0, flat.size - 1), max_size=3)):
            flat[index] = draw(_SPECIAL)
    dtype = draw(st.one_of(st.just(torch.float64), st.just(torch.float32), _DTYPES))
    with np.errstate(invalid="ignore"):
        return torch.from_numpy(values).to(dtype) if dtype.is_floating_point else torch.from_numpy(
            np.nan_to_num(values)).to(dtype)


@st.composite
def lengths_for(draw, batch, steps):
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return None
    if kind == 1:  # anything
        return torch.tensor(draw(st.lists(st.integers(-2, steps + 2), max_size=batch + 1)), dtype=torch.int64)
    if kind == 2:
        return torch.tensor([float(steps)] * batch)
    if kind == 3:
        return [steps] * batch
    valid = st.lists(st.integers(1, max(steps, 1)), min_size=batch, max_size=batch)
    return torch.tensor(draw(valid), dtype=torch.int64)


def _finite(*values) -> bool:
    tensors = [v for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return all(bool(torch.isfinite(v).all()) for v in tensors)


def _no_nan(result) -> bool:
    parts = result if isinstance(result, tuple) else (result,)
    return all(not (isinstance(p, torch.Tensor) and p.is_floating_point() and torch.isnan(p).any()) for p in parts)


_DP = ["forward", "backward", "log_partition", "marginals", "pairwise_marginals", "viterbi"]
_DP_NAMES = ("log_start", "log_trans", "log_unary", "lengths", "method")


@FUZZ
@given(st.data(), st.integers(0, 3), st.integers(0, 5), st.integers(0, 4), st.sampled_from(_DP),
       st.sampled_from(["auto", "sequential", "scan", "other"]))
def test_chain_dynamic_programming(data, batch, steps, states, function, method):
    mismatch = data.draw(st.sampled_from([0, 0, 0, 1]))
    log_start = data.draw(tensors((states + mismatch,)))
    log_trans = data.draw(tensors((states, states)))
    log_unary = data.draw(tensors((batch, steps, states)))
    lengths = data.draw(lengths_for(batch, steps))
    result = clean_or_named(lambda: getattr(dp, function)(log_start, log_trans, log_unary, lengths, method), *_DP_NAMES)
    if result is not None and _finite(log_start, log_trans, log_unary):
        assert _no_nan(result), f"NaN from finite input in dp.{function}"
    if result is not None and function == "marginals":
        assert _no_nan(result)  # with -inf scores too: impossible sequences have marginals 0


@FUZZ
@given(st.data(), st.integers(0, 3), st.integers(0, 5))
def test_reverse_padded(data, batch, steps):
    x = data.draw(tensors((batch, steps, 2)))
    lengths = data.draw(lengths_for(batch, steps))
    result = clean_or_named(lambda: reverse_padded(x, lengths), "lengths", "x")
    if result is not None:
        assert result.shape == x.shape and torch.equal(reverse_padded(result, lengths), x) | (not _finite(x))


@FUZZ
@given(st.data(), st.integers(0, 3), st.integers(0, 4), st.sampled_from(["lstm", "gru", "rnn_tanh"]), st.integers(1, 2))
def test_birnn_forward(data, batch, steps, cell, layers):
    model = BiRNN(3, 2, layers, cell).double()
    width = data.draw(st.sampled_from([3, 3, 2]))
    x = data.draw(tensors((batch, steps, width)))  # any dtype: the model's float64, or a TypeError naming x
    lengths = data.draw(lengths_for(batch, steps))
    result = clean_or_named(lambda: model(x, lengths), "x", "lengths", "input")
    if result is not None and _finite(x):
        assert _no_nan(tuple(result.output if hasattr(result, "output") else result[0:1]))


@FUZZ
@given(st.data(), st.integers(0, 3), st.integers(0, 4), st.integers(1, 3))
def test_crf(data, batch, steps, tags):
    crf = CRF(tags).double()
    emissions = data.draw(tensors((batch, steps, data.draw(st.sampled_from([tags, tags, tags + 1])))))
    gold = torch.tensor(np.random.default_rng(batch).integers(-1, tags + 1, (batch, steps)))
    lengths = data.draw(lengths_for(batch, steps))
    names = ("emissions", "tags", "lengths")
    for result in (clean_or_named(lambda: crf.nll(emissions, gold, lengths), *names),
                   clean_or_named(lambda: crf.decode(emissions, lengths), *names),
                   clean_or_named(lambda: crf.marginals(emissions, lengths), *names)):
        if result is not None and _finite(emissions):
            assert _no_nan(result)


@FUZZ
@given(st.data(), st.sampled_from(["log_likelihood", "filter", "posterior", "viterbi", "pairwise_posterior"]))
def test_hmm_inference(data, method):
    hmm = HMM([0.5, 0.5, 0.0], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.0, 0.0, 1.0]], [[0.5, 0.5, 0.0], [0.1, 0.1, 0.8],
                                                                                     [0.0, 0.0, 1.0]])
    batch, steps = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 5))
    kind = data.draw(st.integers(0, 3))
    if kind == 0:
        obs = data.draw(tensors((batch, steps)))
    elif kind == 1:
        obs = np.random.default_rng(steps).integers(-1, 4, (batch, steps))
    elif kind == 2:
        obs = [np.random.default_rng(i).integers(0, 3, n) for i, n in enumerate(data.draw(st.lists(st.integers(0, 4))))]
    else:
        obs = data.draw(st.lists(st.lists(st.integers(-1, 3), max_size=4), max_size=3))
    lengths = data.draw(lengths_for(batch, steps)) if kind < 2 else None
    result = clean_or_named(lambda: getattr(hmm, method)(obs, lengths), "obs", "lengths", "sequence")
    if result is not None:
        parts = result if isinstance(result, tuple) else (result,)
        assert _no_nan(tuple(torch.as_tensor(np.asarray(part)) for part in parts))
