"""birnn.dp against brute-force enumeration, and its two implementations against each other."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import birnn.dp as dp
from brute_force import enumerate_paths

METHODS = ["sequential", "scan"]


def random_chain(seed, batch, steps, k, impossible=0.0, dtype=torch.float64):
    """Random log scores; a share ``impossible`` of transitions/emissions set to -inf."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(k, generator=g, dtype=dtype)
    trans = torch.randn(k, k, generator=g, dtype=dtype)
    unary = torch.randn(batch, steps, k, generator=g, dtype=dtype)
    if impossible:
        trans = trans.masked_fill(torch.rand(k, k, generator=g) < impossible, -math.inf)
        unary = unary.masked_fill(torch.rand(batch, steps, k, generator=g) < impossible, -math.inf)
        trans[:, 0] = 0.0  # keep at least one path possible
        unary[..., 0] = 0.0
    return start, trans, unary


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k,steps", [(1, 4), (2, 1), (2, 6), (3, 5)])
@pytest.mark.parametrize("impossible", [0.0, 0.3])
def test_matches_enumeration(method, k, steps, impossible):
    start, trans, unary = random_chain(k * 10 + steps, 2, steps, k, impossible)
    lengths = torch.tensor([steps, max(1, steps - 2)])
    log_z = dp.log_partition(start, trans, unary, lengths, method=method)
    unary_m = dp.marginals(start, trans, unary, lengths, method=method)
    pair_m = dp.pairwise_marginals(start, trans, unary, lengths, method=method)
    paths, scores = dp.viterbi(start, trans, unary, lengths, method=method)
    for b in range(2):
        n = int(lengths[b])
        truth = enumerate_paths(start.numpy(), trans.numpy(), unary[b, :n].numpy())
        assert log_z[b].item() == pytest.approx(truth.log_z, abs=1e-10)
        np.testing.assert_allclose(unary_m[b, :n].numpy(), truth.unary, atol=1e-10)
        np.testing.assert_allclose(pair_m[b, : n - 1].numpy(), truth.pairwise, atol=1e-10)
        assert paths[b, :n].tolist() == truth.best_path.tolist()
        assert scores[b].item() == pytest.approx(truth.best_score, abs=1e-10)
        # padding is zero
        assert unary_m[b, n:].abs().sum() == 0 and paths[b, n:].abs().sum() == 0
        assert pair_m[b, max(n - 1, 0) :].abs().sum() == 0


@pytest.mark.parametrize("method", METHODS)
def test_log_z_gradients_are_marginals(method):
    start, trans, unary = random_chain(3, 3, 7, 4)
    unary.requires_grad_(True)
    trans.requires_grad_(True)
    lengths = torch.tensor([7, 4, 1])
    log_z = dp.log_partition(start, trans, unary, lengths, method=method)
    grad_unary, grad_trans = torch.autograd.grad(log_z.sum(), (unary, trans))
    expected_unary = dp.marginals(start, trans, unary, lengths, method=method)
    expected_trans = dp.pairwise_marginals(start, trans, unary, lengths, method=method).sum((0, 1))
    torch.testing.assert_close(grad_unary, expected_unary, atol=1e-10, rtol=0)
    torch.testing.assert_close(grad_trans, expected_trans, atol=1e-10, rtol=0)


def test_log_z_gradient_passes_finite_differences():
    """The sequential log Z's own backward (the forward–backward identity, not autograd through
    the recursion) against central differences, for start, transitions and emissions, padding
    included; and equal to autograd through the recursion."""
    start, trans, unary = random_chain(21, 3, 6, 4)
    lengths = torch.tensor([6, 3, 1])
    leaves = [t.clone().requires_grad_(True) for t in (start, trans, unary)]
    assert torch.autograd.gradcheck(
        lambda s, a, u: dp.log_partition(s, a, u, lengths, method="sequential"), leaves, eps=1e-6, atol=1e-8
    )
    weights = torch.tensor([0.5, -2.0, 1.5], dtype=torch.float64)
    own = torch.autograd.grad((dp.log_partition(*leaves, lengths, method="sequential") * weights).sum(), leaves)
    through = torch.autograd.grad((dp.forward(*leaves, lengths, method="sequential")[1] * weights).sum(), leaves)
    for got, want in zip(own, through, strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0)
    assert own[2][1, 3:].abs().sum() == 0 and own[2][2, 1:].abs().sum() == 0  # nothing at padding


def test_scaled_recursion_survives_scores_far_apart():
    """Scores hundreds of nats apart (float32 exp would underflow): log Z, marginals and the
    gradient still match enumeration."""
    start, trans, unary = random_chain(8, 1, 5, 3)
    unary = unary * 150.0
    trans = trans * 40.0
    truth = enumerate_paths(start.numpy(), trans.numpy(), unary[0].numpy())
    leaf = unary.clone().requires_grad_(True)
    log_z = dp.log_partition(start, trans, leaf, method="sequential")
    (grad,) = torch.autograd.grad(log_z.sum(), leaf)
    assert log_z.item() == pytest.approx(truth.log_z, rel=1e-12)
    np.testing.assert_allclose(grad[0].numpy(), truth.unary, atol=1e-10)
    np.testing.assert_allclose(dp.marginals(start, trans, unary, method="sequential")[0].numpy(), truth.unary,
                               atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_minus_infinity_gives_no_nan_in_values_or_gradients(method):
    start, trans, unary = random_chain(5, 2, 6, 3, impossible=0.4)
    start[1] = -math.inf
    unary.requires_grad_(True)
    trans.requires_grad_(True)
    log_z = dp.log_partition(start, trans, unary, torch.tensor([6, 3]), method=method)
    log_z.sum().backward()
    assert torch.isfinite(log_z).all()
    assert not torch.isnan(unary.grad).any() and not torch.isnan(trans.grad).any()
    marg = dp.marginals(start, trans, unary, torch.tensor([6, 3]), method=method)
    assert not torch.isnan(marg).any()
    assert marg[:, :, 1][:, 0].abs().max() == 0  # impossible start state


def _impossible_chain(case):
    """Two sequences (lengths 5 and 4, K=2); every path of sequence 1 is impossible (all of them for 'start')."""
    start, trans, unary = random_chain(13, 2, 5, 2)
    if case == "emissions":  # nothing can be emitted at t = 2
        unary[1, 2] = -math.inf
    elif case == "transitions":  # state 0 at t = 0, state 1 at t = 1, but 0 -> 1 is impossible
        unary[1, 0, 1] = unary[1, 1, 0] = -math.inf
        trans[0, 1] = -math.inf
    else:  # no state can start
        start[:] = -math.inf
    return start, trans, unary, torch.tensor([5, 4])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", ["emissions", "transitions", "start"])
def test_a_sequence_without_a_possible_path(method, case):
    """log Z = -inf; marginals 0 everywhere; Viterbi score -inf with some path; no NaN, gradients included."""
    start, trans, unary, lengths = _impossible_chain(case)
    leaves = [t.requires_grad_(True) for t in (start, trans, unary)]
    log_alpha, log_z = dp.forward(start, trans, unary, lengths, method=method)
    log_beta = dp.backward(start, trans, unary, lengths, method=method)
    unary_m = dp.marginals(start, trans, unary, lengths, method=method)
    pair_m = dp.pairwise_marginals(start, trans, unary, lengths, method=method)
    paths, scores = dp.viterbi(start, trans, unary, lengths, method=method)
    impossible = [0, 1] if case == "start" else [1]
    for b in impossible:
        assert log_z[b].item() == -math.inf and scores[b].item() == -math.inf
        assert torch.isneginf(log_alpha[b] + log_beta[b]).all()  # no path through any (t, k)
        assert unary_m[b].abs().max() == 0 and pair_m[b].abs().max() == 0
        assert paths[b, :4].ge(0).all() and paths[b, :4].lt(2).all() and paths[b, 4:].abs().sum() == 0
    if case == "emissions":
        assert torch.isneginf(log_alpha[1, 2:]).all() and torch.isneginf(log_beta[1, :2]).all()
    if case != "start":  # the possible sequence is untouched
        truth = enumerate_paths(*(t.detach().numpy() for t in (start, trans, unary[0])))
        assert log_z[0].item() == pytest.approx(truth.log_z, abs=1e-10)
        np.testing.assert_allclose(unary_m[0].detach().numpy(), truth.unary, atol=1e-10)
        np.testing.assert_allclose(pair_m[0].detach().numpy(), truth.pairwise, atol=1e-10)
    for value in (log_alpha, log_beta, log_z, unary_m, pair_m, scores):
        assert not torch.isnan(value).any()
    g = torch.Generator().manual_seed(0)
    loss = (unary_m * torch.randn(unary_m.shape, generator=g, dtype=unary_m.dtype)).sum()
    loss = loss + (pair_m * torch.randn(pair_m.shape, generator=g, dtype=pair_m.dtype)).sum()
    for objective in (loss, log_z.sum()):
        grads = torch.autograd.grad(objective, leaves, retain_graph=True, allow_unused=True)
        assert all(grad is None or not torch.isnan(grad).any() for grad in grads)
    grad_unary = torch.autograd.grad(log_z.sum(), unary)[0]
    for b in impossible:
        assert grad_unary[b].abs().max() == 0  # d log Z / d unary = the marginals, 0 here


@given(
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    extra=st.integers(0, 3),
    method=st.sampled_from(METHODS),
    seed=st.integers(0, 1000),
)
def test_padding_never_changes_a_sequence(lengths, extra, method, seed):
    steps = max(lengths) + extra
    start, trans, unary = random_chain(seed, len(lengths), steps, 3)
    noisy = unary.clone()
    g = torch.Generator().manual_seed(seed + 1)
    for b, n in enumerate(lengths):
        noisy[b, n:] = 100 * torch.randn(steps - n, 3, generator=g, dtype=torch.float64)
    lens = torch.tensor(lengths)
    for fn in (dp.log_partition, dp.marginals):
        torch.testing.assert_close(fn(start, trans, unary, lens, method), fn(start, trans, noisy, lens, method))
    for b, n in enumerate(lengths):
        alone = dp.log_partition(start, trans, unary[b : b + 1, :n], None, method)
        assert dp.log_partition(start, trans, noisy, lens, method)[b].item() == pytest.approx(alone.item())
    assert torch.equal(
        dp.viterbi(start, trans, unary, lens, method)[0], dp.viterbi(start, trans, noisy, lens, method)[0]
    )


@given(
    batch=st.integers(1, 3),
    steps=st.integers(1, 40),
    k=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_sequential_and_scan_agree(batch, steps, k, seed):
    start, trans, unary = random_chain(seed, batch, steps, k)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    seq_alpha, seq_z = dp.forward(start, trans, unary, lengths, method="sequential")
    scan_alpha, scan_z = dp.forward(start, trans, unary, lengths, method="scan")
    torch.testing.assert_close(seq_z, scan_z)
    torch.testing.assert_close(seq_alpha, scan_alpha)
    torch.testing.assert_close(
        dp.backward(start, trans, unary, lengths, method="sequential"),
        dp.backward(start, trans, unary, lengths, method="scan"),
    )
    assert torch.equal(
        dp.viterbi(start, trans, unary, lengths, method="sequential")[0],
        dp.viterbi(start, trans, unary, lengths, method="scan")[0],
    )


@pytest.mark.parametrize("method", METHODS)
def test_float32(method):
    start, trans, unary = random_chain(9, 2, 12, 3, dtype=torch.float32)
    log_z = dp.log_partition(start, trans, unary, method=method)
    reference = dp.log_partition(start.double(), trans.double(), unary.double(), method=method)
    assert log_z.dtype == torch.float32
    torch.testing.assert_close(log_z.double(), reference, atol=1e-4, rtol=1e-5)


def test_long_chain_is_finite_and_normalised():
    start, trans, unary = random_chain(11, 1, 100_000, 4)
    assert dp.choose_method(1, 100_000, 4) == "scan"
    marg = dp.marginals(start, trans, unary)
    assert torch.isfinite(dp.log_partition(start, trans, unary)).all()
    torch.testing.assert_close(marg.sum(-1), torch.ones(1, 100_000, dtype=torch.float64))


def test_bad_input_names_the_argument():
    start, trans, unary = random_chain(0, 2, 5, 3)
    with pytest.raises(ValueError, match="log_unary must have shape"):
        dp.log_partition(start, trans, unary[0])
    with pytest.raises(ValueError, match=r"log_trans must have shape \(K, K\) = \(3, 3\)"):
        dp.log_partition(start, trans[:2], unary)
    with pytest.raises(ValueError, match="log_start"):
        dp.log_partition(start[:2], trans, unary)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=5\]"):
        dp.log_partition(start, trans, unary, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\)"):
        dp.log_partition(start, trans, unary, torch.tensor([5]))
    with pytest.raises(TypeError, match="lengths must hold integers"):
        dp.log_partition(start, trans, unary, torch.tensor([5.0, 5.0]))
    with pytest.raises(TypeError, match="float tensor"):
        dp.log_partition(start, trans, torch.zeros(2, 5, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="contains NaN"):
        dp.log_partition(start, trans, unary.masked_fill(unary > 1, math.nan))
    with pytest.raises(ValueError, match="method must be one of"):
        dp.log_partition(start, trans, unary, method="fast")
