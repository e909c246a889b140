"""birnn.nn.CRF against brute-force enumeration of all K^T tag paths (STYLE §9), plus constraints and padding."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from birnn.data.tagschemes import allowed_transitions, is_valid
from birnn.nn import crf as crf_math
from birnn.nn.crf import CRF

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
BIOES = ["O", "B-X", "I-X", "E-X", "S-X", "B-Y", "I-Y", "E-Y", "S-Y"]


# --- independent truth -------------------------------------------------------------------------


def all_paths(start, trans, end, emissions):
    """Every path of one sequence with its score, written out plainly. emissions: (n, K) -> [(path, score)].

    score(y) = start[y_0] + sum_t emissions[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_{n-1}]
    """
    steps, k = emissions.shape
    out = []
    for path in itertools.product(range(k), repeat=steps):
        score = start[path[0]] + end[path[-1]]
        for t in range(steps):
            score += emissions[t, path[t]]
            if t > 0:
                score += trans[path[t - 1], path[t]]
        out.append((path, float(score)))
    return out


def brute_force(start, trans, end, emissions):
    """-> log Z, marginals (n, K), paths sorted best first [(path, score)]."""
    paths = all_paths(*(np.asarray(a, dtype=np.float64) for a in (start, trans, end, emissions)))
    scores = np.array([s for _, s in paths])
    top = scores.max()
    log_z = top + math.log(np.exp(scores - top).sum()) if np.isfinite(top) else -math.inf
    unary = np.zeros(emissions.shape)
    for (path, _), w in zip(paths, np.exp(scores - log_z), strict=True):
        unary[np.arange(len(path)), path] += w
    return log_z, unary, sorted(paths, key=lambda p: -p[1])


# --- fixtures ----------------------------------------------------------------------------------


def random_allowed(g, k):
    """Random masks with about a third of entries disallowed; the all-zeros path always stays possible."""
    start, trans, end = (torch.rand(*shape, generator=g) > 0.35 for shape in ((k,), (k, k), (k,)))
    start[0] = end[0] = trans[0, 0] = True
    return start, trans, end


def random_crf(seed, k, allowed=None, dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    if allowed == "random":
        allowed = random_allowed(g, k)
    crf = CRF(k, allowed).to(dtype)
    with torch.no_grad():
        for p in (crf.transitions, crf.start, crf.end):
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * scale)
    return crf, g


def random_batch(g, batch, steps, k, dtype=torch.float64, scale=1.0):
    emissions = torch.randn(batch, steps, k, generator=g, dtype=dtype) * scale
    lengths = torch.randint(1, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    return emissions, lengths


def numpy_scores(crf):
    """The constrained (start, transitions, end) as float64 NumPy arrays, in brute_force's order."""
    transitions, start, end = (t.detach().double().numpy() for t in crf.constrained())
    return start, transitions, end


# --- against enumeration -----------------------------------------------------------------------


@pytest.mark.parametrize("k,steps", [(1, 3), (2, 1), (3, 5), (4, 4)])
@pytest.mark.parametrize("allowed", [None, "random"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_enumeration(k, steps, allowed, dtype):
    crf, g = random_crf(k * 10 + steps, k, allowed, dtype)
    emissions, lengths = random_batch(g, 4, steps, k, dtype)
    with torch.no_grad():
        log_z = crf.log_partition(emissions, lengths)
        marg = crf.marginals(emissions, lengths)
        paths, scores = crf.decode(emissions, lengths)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    start, trans, end = numpy_scores(crf)
    for b in range(4):
        n = int(lengths[b])
        truth_z, truth_m, ranked = brute_force(start, trans, end, emissions[b, :n].double().numpy())
        assert log_z[b].item() == pytest.approx(truth_z, abs=tol)
        np.testing.assert_allclose(marg[b, :n].double().numpy(), truth_m, atol=tol)
        assert tuple(paths[b, :n].tolist()) == ranked[0][0]
        assert scores[b].item() == pytest.approx(ranked[0][1], abs=tol)
        assert marg[b, n:].abs().sum() == 0 and paths[b, n:].abs().sum() == 0
    assert log_z.dtype == marg.dtype == scores.dtype == dtype and paths.dtype == torch.int64


@pytest.mark.parametrize("method", ["sequential", "scan"])
def test_functions_match_enumeration_for_either_dp_method(method):
    crf, g = random_crf(5, 3, "random")
    emissions, lengths = random_batch(g, 3, 5, 3)
    transitions, start, end = crf.constrained()
    log_z = crf_math.log_partition(emissions, transitions, start, end, lengths, method)
    marg = crf_math.marginals(emissions, transitions, start, end, lengths, method)
    for b in range(3):
        n = int(lengths[b])
        truth_z, truth_m, _ = brute_force(*numpy_scores(crf), emissions[b, :n].numpy())
        assert log_z[b].item() == pytest.approx(truth_z, abs=1e-9)
        np.testing.assert_allclose(marg[b, :n].detach().numpy(), truth_m, atol=1e-9)


def test_golden_two_by_two():
    """Zero transitions, emissions [[1, 0], [0, 1]]: Z = (e + 1)², p(y_0 = 0) = e / (e + 1), best path (0, 1)."""
    crf = CRF(2).double()
    emissions = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    assert crf.log_partition(emissions).item() == pytest.approx(2 * math.log(math.e + 1))
    assert crf.marginals(emissions)[0, 0, 0].item() == pytest.approx(math.e / (math.e + 1))
    paths, scores = crf.decode(emissions)
    assert paths.tolist() == [[0, 1]] and scores.item() == pytest.approx(2.0)
    with torch.no_grad():
        crf.end[1] = -math.inf  # now only paths ending in tag 0: Z = (e + 1) · e^0
    assert crf.log_partition(emissions).item() == pytest.approx(math.log(math.e + 1))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("allowed", [None, "random", "bioes"])
def test_gradient_of_log_z_is_marginals_and_finite(dtype, allowed):
    k = len(BIOES) if allowed == "bioes" else 4
    crf, g = random_crf(7, k, allowed_transitions(BIOES, "bioes") if allowed == "bioes" else allowed, dtype)
    emissions, lengths = random_batch(g, 5, 6, k, dtype)
    tags = crf.decode(emissions, lengths)[0]
    emissions.requires_grad_(True)
    crf.log_partition(emissions, lengths).sum().backward()
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(emissions.grad, crf.marginals(emissions, lengths).detach(), atol=tol, rtol=0)
    crf.zero_grad()
    emissions.grad = None
    crf.nll(emissions, tags, lengths, reduction="sum").backward()
    for tensor in (emissions.grad, crf.transitions.grad, crf.start.grad, crf.end.grad):
        assert torch.isfinite(tensor).all()
    assert crf.transitions.grad[~crf.trans_allowed].abs().sum() == 0  # masked entries never learn
    assert crf.start.grad[~crf.start_allowed].abs().sum() == 0


def test_nll_is_a_distribution_over_all_paths():
    """exp(-nll) over all K^n paths (any tags at padding) sums to 1, and nll >= 0."""
    k, steps, n = 3, 4, 3
    crf, g = random_crf(11, k, "random")
    emissions = torch.randn(1, steps, k, generator=g, dtype=torch.float64)
    paths = torch.tensor(list(itertools.product(range(k), repeat=n)))  # (K^n, n)
    junk = torch.randint(0, k, (len(paths), steps - n), generator=g)
    tags = torch.cat([paths, junk], dim=1)
    nll = crf.nll(emissions.expand(len(tags), -1, -1), tags, torch.full((len(tags),), n), reduction="none")
    assert (nll >= -1e-12).all()
    assert torch.logsumexp(-nll, dim=0).item() == pytest.approx(0.0, abs=1e-12)


def test_nll_reductions():
    crf, g = random_crf(2, 4)
    emissions, lengths = random_batch(g, 3, 5, 4)
    tags = torch.randint(0, 4, (3, 5), generator=g)
    per_sequence = crf.nll(emissions, tags, lengths, reduction="none")
    assert per_sequence.shape == (3,)
    torch.testing.assert_close(crf.nll(emissions, tags, lengths, "sum"), per_sequence.sum())
    torch.testing.assert_close(crf.nll(emissions, tags, lengths), per_sequence.mean())
    torch.testing.assert_close(crf(emissions, tags, lengths, "token_mean"), per_sequence.sum() / lengths.sum())
    for b in range(3):
        n = int(lengths[b])
        truth_z, _, ranked = brute_force(*numpy_scores(crf), emissions[b, :n].numpy())
        gold = dict(ranked)[tuple(tags[b, :n].tolist())]
        assert per_sequence[b].item() == pytest.approx(truth_z - gold, abs=1e-10)


def test_disallowed_gold_path_has_infinite_nll_without_nan():
    crf = CRF(len(BIO), allowed_transitions(BIO, "bio")).double()
    emissions = torch.randn(1, 3, len(BIO), dtype=torch.float64, requires_grad=True)
    tags = torch.tensor([[BIO.index("I-PER"), 0, 0]])  # I-PER at the start
    loss = crf.nll(emissions, tags)
    assert loss.item() == math.inf
    loss.backward()
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()


# --- constraints from tag schemes --------------------------------------------------------------


@pytest.mark.parametrize("tag_list,scheme", [(BIO, "bio"), (BIOES, "bioes")])
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 7))
def test_constrained_decoding_is_valid(tag_list, scheme, seed, steps):
    k = len(tag_list)
    crf, g = random_crf(seed, k, allowed_transitions(tag_list, scheme), torch.float32, scale=3.0)
    emissions, lengths = random_batch(g, 6, steps, k, torch.float32, scale=5.0)
    paths, scores = crf.decode(emissions, lengths)
    nbest, nscores = crf.decode_nbest(emissions, lengths, 3)
    assert torch.isfinite(scores).all()
    for b in range(6):
        n = int(lengths[b])
        assert is_valid([tag_list[i] for i in paths[b, :n].tolist()], scheme)
        for r in range(3):
            if torch.isfinite(nscores[b, r]):
                assert is_valid([tag_list[i] for i in nbest[b, r, :n].tolist()], scheme)
    marg = crf.marginals(emissions, lengths)
    assert torch.isfinite(marg).all()
    never_first = [i for i, tag in enumerate(tag_list) if tag[0] in ("IE" if scheme == "bioes" else "I")]
    assert marg[:, 0, never_first].abs().sum() == 0
    if scheme == "bioes":
        last = marg[torch.arange(6), lengths - 1]  # (B, K)
        never_last = [i for i, tag in enumerate(tag_list) if tag[0] in "BI"]
        assert last[:, never_last].abs().sum() == 0


def test_constraints_are_saved_and_restored():
    crf = CRF(len(BIOES), allowed_transitions(BIOES, "bioes"))
    restored = CRF(len(BIOES))
    restored.load_state_dict(crf.state_dict())
    assert torch.equal(restored.trans_allowed, crf.trans_allowed)
    assert restored.constrained()[0].isinf().sum() == (~crf.trans_allowed).sum()
    assert "disallowed=" in repr(crf)


# --- padding -----------------------------------------------------------------------------------


def test_padding_invariance():
    """Appending padding filled with junk (huge, inf, NaN) changes nothing, and matches each sequence alone."""
    crf, g = random_crf(3, 4, "random")
    emissions, lengths = random_batch(g, 4, 5, 4)
    tags = torch.randint(0, 4, (4, 5), generator=g)
    junk = torch.randn(4, 8, 4, generator=g, dtype=torch.float64) * 1e6
    junk[:, 5, 0], junk[:, 6, 1], junk[:, 7, 2] = math.nan, math.inf, -math.inf
    junk[1, 3], junk[2, 4] = math.nan, -math.inf  # inside the original T, where sequences 1, 2 are padding
    junk[0, 5:, :] = math.nan
    lengths[1:3] = torch.tensor([3, 4])
    valid = (torch.arange(8)[None, :] < lengths[:, None])[..., None]
    padded = torch.where(valid, torch.cat([emissions, torch.zeros(4, 3, 4, dtype=torch.float64)], dim=1), junk)
    padded.requires_grad_(True)
    padded_tags = torch.cat([tags, torch.full((4, 3), -100)], dim=1)  # an ignore index at padding is fine

    def everything(x, y, lengths=lengths):
        nbest, nscores = crf.decode_nbest(x, lengths, 4)
        return (
            crf.log_partition(x, lengths),
            crf.nll(x, y, lengths, "none"),
            crf.marginals(x, lengths)[:, :5],
            crf.decode(x, lengths)[0][:, :5],
            crf.decode(x, lengths)[1],
            nbest[..., :5],
            nscores,
        )

    for got, want in zip(everything(padded, padded_tags), everything(emissions, tags), strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    crf.nll(padded, padded_tags, lengths, "sum").backward()
    assert torch.isfinite(padded.grad).all()
    for b in range(4):
        n = int(lengths[b])
        assert padded.grad[b, n:].abs().sum() == 0
        alone = everything(emissions[b : b + 1, :n], tags[b : b + 1, :n], lengths[b : b + 1])
        assert alone[0].item() == pytest.approx(crf.log_partition(emissions, lengths)[b].item(), abs=1e-12)
        assert alone[3][0].tolist() == crf.decode(emissions, lengths)[0][b, :n].tolist()


# --- n-best ------------------------------------------------------------------------------------


@pytest.mark.parametrize("k,steps,n", [(2, 3, 3), (3, 4, 5), (4, 3, 7), (2, 2, 6)])
@pytest.mark.parametrize("allowed", [None, "random"])
def test_nbest_matches_enumeration(k, steps, n, allowed):
    crf, g = random_crf(k * 100 + steps * 10 + n, k, allowed)
    emissions, lengths = random_batch(g, 4, steps, k)
    paths, scores = crf.decode_nbest(emissions, lengths, n)
    assert paths.shape == (4, n, steps) and scores.shape == (4, n)
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # sorted, best first
    best, best_score = crf.decode(emissions, lengths)
    torch.testing.assert_close(paths[:, 0], best)
    torch.testing.assert_close(scores[:, 0], best_score)
    for b in range(4):
        m = int(lengths[b])
        ranked = [p for p in brute_force(*numpy_scores(crf), emissions[b, :m].numpy())[2] if math.isfinite(p[1])]
        found = min(n, len(ranked))
        got = [tuple(p) for p in paths[b, :found, :m].tolist()]
        assert got == [p for p, _ in ranked[:found]]
        assert len(set(got)) == found  # distinct
        np.testing.assert_allclose(scores[b, :found].detach().numpy(), [s for _, s in ranked[:found]], atol=1e-10)
        assert torch.isneginf(scores[b, found:]).all()
        assert paths[b, :, m:].abs().sum() == 0
    # each reported score is the score of its path
    for r in range(n):
        finite = torch.isfinite(scores[:, r])
        torch.testing.assert_close(crf.score(emissions, paths[:, r], lengths)[finite], scores[finite, r])


# --- errors ------------------------------------------------------------------------------------


def test_errors_name_the_argument():
    crf = CRF(3)
    with pytest.raises(ValueError, match="emissions must have shape"):
        crf.log_partition(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="lengths must lie in"):
        crf.marginals(torch.zeros(2, 4, 3), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="tags must lie in"):
        crf.score(torch.zeros(1, 2, 3), torch.tensor([[0, 3]]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        crf.nll(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), reduction="avg")
    with pytest.raises(ValueError, match="n must be"):
        crf.decode_nbest(torch.zeros(1, 2, 3), None, 0)
    with pytest.raises(ValueError, match="trans_allowed must have shape"):
        CRF(3, (np.ones(3, bool), np.ones((2, 2), bool), np.ones(3, bool)))
    with pytest.raises(TypeError, match="start_allowed must be a bool"):
        CRF(3, (np.ones(3), np.ones((3, 3), bool), np.ones(3, bool)))
    with pytest.raises(ValueError, match="end_allowed allows no tag"):
        CRF(3, (np.ones(3, bool), np.ones((3, 3), bool), np.zeros(3, bool)))
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)


@pytest.mark.parametrize("call", ["nll", "decode", "marginals", "log_partition", "score"])
def test_nan_at_a_real_position_is_named(call):
    """NaN where it would be read is refused with a message naming ``emissions`` and the position."""
    crf = CRF(3).double()
    emissions = torch.zeros(2, 4, 3, dtype=torch.float64)
    emissions[1, 2, 0] = math.nan
    tags = torch.zeros(2, 4, dtype=torch.int64)
    args = {"nll": (emissions, tags, [4, 4]), "score": (emissions, tags, [4, 4])}.get(call, (emissions, [4, 4]))
    with pytest.raises(ValueError, match=r"emissions contains NaN .*batch 1, step 2"):
        getattr(crf, call)(*args)
