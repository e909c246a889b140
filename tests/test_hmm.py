"""birnn.hmm against brute force, a textbook example, hmmlearn, and itself."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from birnn.hmm import HMM, casino
from birnn.hmm import inference as inf
from birnn.spec import check_memory
from brute_force import enumerate_paths, hmm_log_unary, path_score


def random_hmm(seed: int, k: int, v: int, sparse: bool = False) -> HMM:
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.ones(k), size=k)
    emission = rng.dirichlet(np.ones(v), size=k)
    if sparse and k > 1:
        trans[0, 1] = 0.0
        trans /= trans.sum(1, keepdims=True)
    return HMM(rng.dirichlet(np.ones(k)), trans, emission)


@pytest.mark.parametrize("k,steps", [(1, 3), (2, 1), (2, 6), (3, 5), (3, 6)])
def test_matches_enumeration_of_all_paths(k, steps):
    hmm = random_hmm(k * 7 + steps, k, 4, sparse=True)
    rng = np.random.default_rng(steps)
    obs = rng.integers(0, 4, size=(2, steps))
    lengths = np.array([steps, max(1, steps - 2)])
    log_lik = hmm.log_likelihood(obs, lengths)
    post = hmm.posterior(obs, lengths)
    pair = hmm.pairwise_posterior(obs, lengths)
    paths, log_prob = hmm.viterbi(obs, lengths)
    with np.errstate(divide="ignore"):
        log_start, log_trans = np.log(hmm.start), np.log(hmm.transition)
    for b in range(2):
        n = lengths[b]
        truth = enumerate_paths(log_start, log_trans, hmm_log_unary(hmm.emission, obs[b, :n]))
        assert log_lik[b] == pytest.approx(truth.log_z, abs=1e-10)
        np.testing.assert_allclose(post[b, :n], truth.unary, atol=1e-10)
        np.testing.assert_allclose(pair[b, : n - 1], truth.pairwise, atol=1e-10)
        assert paths[b, :n].tolist() == truth.best_path.tolist()
        assert log_prob[b] == pytest.approx(truth.best_score, abs=1e-10)
        assert np.all(post[b, n:] == 0) and np.all(paths[b, n:] == 0)


def test_filter_is_the_forward_pass_alone():
    """p(h_t | x_1..t) equals the smoothed posterior of the prefix x_1..t."""
    hmm = random_hmm(4, 3, 5)
    obs = np.random.default_rng(0).integers(0, 5, size=12)
    filtered = hmm.filter(obs)
    for t in range(1, 13):
        np.testing.assert_allclose(filtered[t - 1], hmm.posterior(obs[:t])[-1], atol=1e-12)


def test_wikipedia_umbrella_example():
    """Forward–backward worked example (Wikipedia; also in hmmlearn's tests)."""
    hmm = HMM([0.5, 0.5], [[0.7, 0.3], [0.3, 0.7]], [[0.9, 0.1], [0.2, 0.8]])
    obs = [0, 0, 1, 0, 0]  # umbrella, umbrella, no umbrella, umbrella, umbrella
    expected_smoothed = [
        [0.8673, 0.1327],
        [0.8204, 0.1796],
        [0.3075, 0.6925],
        [0.8204, 0.1796],
        [0.8673, 0.1327],
    ]
    expected_filtered = [
        [0.8182, 0.1818],
        [0.8834, 0.1166],
        [0.1907, 0.8093],
        [0.7308, 0.2692],
        [0.8673, 0.1327],
    ]
    np.testing.assert_allclose(hmm.posterior(obs), expected_smoothed, atol=1e-4)
    np.testing.assert_allclose(hmm.filter(obs), expected_filtered, atol=1e-4)


def _hmmlearn_model(hmm: HMM):
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    model = hmmlearn.CategoricalHMM(n_components=hmm.n_states, init_params="", params="ste", n_iter=1)
    model.n_features = hmm.n_symbols
    model.startprob_, model.transmat_, model.emissionprob_ = hmm.start, hmm.transition, hmm.emission
    return model


@pytest.mark.parametrize("k,v", [(2, 6), (4, 10)])
def test_agrees_with_hmmlearn(k, v):
    hmm = random_hmm(k + v, k, v)
    sequences = [hmm.sample(1, n, seed=n)[0][0] for n in (30, 17, 41)]
    concatenated = np.concatenate(sequences)[:, None]
    lengths = [len(s) for s in sequences]
    model = _hmmlearn_model(hmm)
    assert hmm.log_likelihood(sequences).sum() == pytest.approx(model.score(concatenated, lengths), rel=1e-10)
    ours = np.concatenate([p[:n] for p, n in zip(hmm.posterior(sequences), lengths, strict=True)])
    np.testing.assert_allclose(ours, model.predict_proba(concatenated, lengths), atol=1e-10)
    paths, log_prob = hmm.viterbi(sequences)
    their_log_prob, their_path = model.decode(concatenated, lengths, algorithm="viterbi")
    assert log_prob.sum() == pytest.approx(their_log_prob, rel=1e-10)
    assert np.concatenate([p[:n] for p, n in zip(paths, lengths, strict=True)]).tolist() == their_path.tolist()
    # one Baum–Welch step from the same parameters
    fitted, _ = HMM.fit(sequences, k, n_iter=1, init=hmm, tol=-np.inf)
    model.fit(concatenated, lengths)
    np.testing.assert_allclose(fitted.start, model.startprob_, atol=1e-8)
    np.testing.assert_allclose(fitted.transition, model.transmat_, atol=1e-8)
    np.testing.assert_allclose(fitted.emission, model.emissionprob_, atol=1e-8)


@pytest.mark.parametrize("k", [2, 3, 8])
def test_compiled_and_blas_engines_agree(k, monkeypatch):
    hmm = random_hmm(k, k, 5, sparse=True)
    obs, _ = hmm.sample(3, 300, seed=k)
    lengths = np.array([300, 177, 64])
    results = {}
    for blas in (False, True):
        monkeypatch.setattr(inf, "use_blas", lambda batch, states, blas=blas: blas)
        results[blas] = (
            hmm.posterior(obs, lengths),
            hmm.log_likelihood(obs, lengths),
            hmm.pairwise_posterior(obs, lengths),
            hmm.viterbi(obs, lengths),
        )
    for ours, theirs in zip(results[False][:3], results[True][:3], strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-10)
    # Viterbi always runs compiled; its path must reach the optimum the brute force confirms elsewhere.
    paths, log_prob = results[False][3]
    with np.errstate(divide="ignore"):
        log_start, log_trans = np.log(hmm.start), np.log(hmm.transition)
    for b, n in enumerate(lengths):
        achieved = path_score(paths[b, :n], log_start, log_trans, hmm_log_unary(hmm.emission, obs[b, :n]))
        assert achieved == pytest.approx(log_prob[b], abs=1e-9)


def _max_plus_viterbi(log_start, log_trans, log_unary):
    """The Viterbi recursion in NumPy: δ_t = max_i(δ_{t-1}(i) + log A(i, :)) + log e_t. -> path, log p(x, h*)."""
    delta, back = log_start + log_unary[0], []
    for unary in log_unary[1:]:
        candidates = delta[:, None] + log_trans  # (K, K): from i, to j
        back.append(candidates.argmax(axis=0))
        delta = candidates.max(axis=0) + unary
    path = [int(delta.argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    return path[::-1], delta.max()


@pytest.mark.parametrize("k", [5, 37, 128])
def test_vectorised_viterbi_matches_numpy_max_plus(k):
    """Many states (the packed-max path, K not a multiple of the SIMD width) and -inf transitions."""
    rng = np.random.default_rng(k)
    trans = rng.dirichlet(np.ones(k), size=k) * (rng.random((k, k)) > 0.3)  # ~30% impossible transitions
    trans[np.arange(k), rng.integers(0, k, k)] += 0.1  # keep every row alive
    hmm = HMM(rng.dirichlet(np.ones(k)), trans / trans.sum(1, keepdims=True), rng.dirichlet(np.ones(9), size=k))
    obs, _ = hmm.sample(5, 60, seed=k)  # 5 sequences: more than the worker threads, so workers reuse their δ
    lengths = np.array([60, 13, 1, 60, 41])
    paths, log_prob = hmm.viterbi(obs, lengths)
    with np.errstate(divide="ignore"):
        log_start, log_trans = np.log(hmm.start), np.log(hmm.transition)
    for b, n in enumerate(lengths):
        path, score = _max_plus_viterbi(log_start, log_trans, hmm_log_unary(hmm.emission, obs[b, :n]))
        assert paths[b, :n].tolist() == path and log_prob[b] == score
        assert np.isfinite(score) and np.all(paths[b, n:] == 0)
        single_path, single_score = hmm.viterbi(obs[b, :n])
        assert single_path.tolist() == path and single_score == score


@given(lengths=st.lists(st.integers(1, 80), min_size=1, max_size=4), seed=st.integers(0, 100))
def test_padding_never_changes_a_sequence(lengths, seed):
    hmm = random_hmm(seed, 2, 3)
    steps = max(lengths) + 3
    obs = np.random.default_rng(seed).integers(0, 3, size=(len(lengths), steps))
    batch_post = hmm.posterior(obs, lengths)
    batch_paths, batch_lp = hmm.viterbi(obs, lengths)
    batch_ll = hmm.log_likelihood(obs, lengths)
    log_params = np.log(hmm.start), np.log(hmm.transition)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(batch_post[b, :n], hmm.posterior(obs[b, :n]), atol=1e-10)
        assert batch_ll[b] == pytest.approx(hmm.log_likelihood(obs[b, :n]), abs=1e-8)
        _, lp = hmm.viterbi(obs[b, :n])
        assert batch_lp[b] == pytest.approx(lp, abs=1e-8)
        # Equal-scoring paths tie exactly in small HMMs: compare the score the path achieves.
        achieved = path_score(batch_paths[b, :n], *log_params, hmm_log_unary(hmm.emission, obs[b, :n]))
        assert achieved == pytest.approx(lp, abs=1e-8)


def test_million_steps_stay_finite_and_normalised():
    hmm = casino()
    obs, _ = hmm.sample(1, 1_000_000, seed=0)
    posterior = hmm.posterior(obs[0])
    assert np.isfinite(hmm.log_likelihood(obs[0]))
    np.testing.assert_allclose(posterior.sum(-1), 1.0, atol=1e-9)


def test_baum_welch_recovers_the_loaded_die():
    truth = casino()
    obs, _ = truth.sample(50, 500, seed=1)
    fitted, history = HMM.fit(obs, 2, n_iter=300, tol=1e-6, seed=3)
    assert np.all(np.diff(history) >= -1e-8 * abs(history[-1]))
    loaded = int(np.argmax(fitted.emission[:, 5]))
    assert fitted.emission[loaded, 5] == pytest.approx(0.5, abs=0.05)


def test_history_never_decreases_on_random_data():
    obs = np.random.default_rng(0).integers(0, 4, size=(5, 60))
    _, history = HMM.fit(obs, 3, n_iter=40, tol=-np.inf, seed=0)
    assert len(history) == 41
    assert np.all(np.diff(history) >= -1e-9 * abs(history[-1]))


def test_inputs_kinds_and_shapes():
    hmm = casino()
    obs, _ = hmm.sample(2, 10, seed=0)
    as_torch = hmm.posterior(torch.from_numpy(obs))
    assert isinstance(as_torch, torch.Tensor) and as_torch.shape == (2, 10, 2)
    np.testing.assert_allclose(as_torch.numpy(), hmm.posterior(obs))
    assert hmm.posterior(obs[0]).shape == (10, 2)
    ragged = hmm.posterior([obs[0], obs[1, :4]])
    np.testing.assert_allclose(ragged[1, :4], hmm.posterior(obs[1, :4]))
    paths, log_prob = hmm.viterbi(torch.from_numpy(obs[0]))
    assert isinstance(paths, torch.Tensor) and paths.shape == (10,) and log_prob.shape == ()


def test_json_round_trip(tmp_path):
    hmm = random_hmm(1, 3, 4)
    hmm.save(tmp_path / "m.json")
    again = HMM.load(tmp_path / "m.json")
    np.testing.assert_array_equal(again.emission, hmm.emission)
    (tmp_path / "bad.json").write_text(json.dumps({"format": "birnn.hmm", "start": [1.0]}))
    with pytest.raises(ValueError, match="bad.json: missing transition, emission"):
        HMM.load(tmp_path / "bad.json")


def test_sampling_follows_the_model():
    obs, states = casino().sample(200, 200, seed=0)
    loaded = states == 1
    assert loaded.mean() == pytest.approx(1 / 3, abs=0.03)
    assert (obs[loaded] == 5).mean() == pytest.approx(0.5, abs=0.02)
    assert (obs[~loaded] == 5).mean() == pytest.approx(1 / 6, abs=0.02)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"transition rows must sum to 1; got row sums \[1\.1"):
        HMM([0.5, 0.5], [[0.6, 0.5], [0.5, 0.5]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match="start must be non-negative"):
        HMM([1.5, -0.5], [[1, 0], [0, 1]], [[1.0], [1.0]])
    with pytest.raises(ValueError, match=r"emission must have K=2 rows"):
        HMM([0.5, 0.5], [[1, 0], [0, 1]], [[1.0]])
    hmm = casino()
    with pytest.raises(ValueError, match=r"obs symbols must lie in \[0, V=6\); got min 0, max 6"):
        hmm.posterior([0, 6])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=3\]"):
        hmm.posterior([[0, 1, 2]], lengths=[4])
    with pytest.raises(ValueError, match="obs is empty"):
        hmm.posterior(np.zeros((0,), dtype=int))
    with pytest.raises(ValueError, match="must be 1-D"):
        hmm.posterior(np.zeros((1, 2, 3), dtype=int))
    with pytest.raises(TypeError, match="integer symbols"):
        hmm.posterior([0.5, 1.0])


def _absorbing_hmm() -> HMM:
    """State 1 is absorbing, reached for sure after one step, and never emits symbol 1."""
    return HMM([1.0, 0.0], [[0.0, 1.0], [0.0, 1.0]], [[0.5, 0.5], [1.0, 0.0]])


@pytest.mark.parametrize("blas", [False, True])
def test_zero_probability_sequence_is_minus_inf_and_refused_by_posteriors(blas, monkeypatch):
    monkeypatch.setattr(inf, "use_blas", lambda batch, states: blas)
    hmm = _absorbing_hmm()
    obs = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0]])  # possible; impossible at t=2; impossible at t=1
    lengths = np.array([3, 3, 1])  # the third is only [1]: possible, its padding never counts
    log_lik = hmm.log_likelihood(obs, lengths)
    assert log_lik[0] == pytest.approx(np.log(0.5)) and log_lik[2] == pytest.approx(np.log(0.5))
    assert log_lik[1] == -np.inf
    assert hmm.log_likelihood([1, 1]) == -np.inf  # impossible at t=1, unbatched
    assert HMM([0.0, 1.0], [[1, 0], [0, 1]], [[0.5, 0.5], [1.0, 0.0]]).log_likelihood([1]) == -np.inf  # t=0
    message = r"probability 0 under this HMM for sequence 1 \(x_t impossible at t=2\)"
    for method in (hmm.posterior, hmm.filter, hmm.pairwise_posterior):
        with pytest.raises(ValueError, match=message):
            method(obs, lengths)
    with pytest.raises(ValueError, match=message):
        HMM.fit(obs, 2, lengths=lengths, init=hmm, n_iter=1)
    np.testing.assert_allclose(hmm.posterior(obs[[0, 2]], lengths[[0, 2]])[0], [[1, 0], [0, 1], [0, 1]])
    _, log_prob = hmm.viterbi(obs, lengths)
    assert log_prob[1] == -np.inf and np.isfinite(log_prob[[0, 2]]).all()


def _per_step_sample(hmm, n, T, seed):
    """The plain per-step inverse-CDF sampler the compiled one must reproduce draw for draw."""
    rng = np.random.default_rng(seed)

    def draw(cumulative, count):
        u = rng.random(count)[:, None]
        return np.minimum((u >= cumulative).sum(axis=1), cumulative.shape[1] - 1)

    states = np.empty((n, T), dtype=np.int64)
    states[:, 0] = draw(np.cumsum(hmm.start)[None, :], n)
    for t in range(1, T):
        states[:, t] = draw(np.cumsum(hmm.transition, axis=1)[states[:, t - 1]], n)
    obs = draw(np.cumsum(hmm.emission, axis=1)[states.ravel()], n * T).reshape(n, T)
    return obs, states


@pytest.mark.parametrize(("n", "T"), [(1, 1), (3, 700), (2000, 600)])
def test_compiled_sampler_draws_what_the_per_step_sampler_draws(n, T, monkeypatch):
    monkeypatch.setattr("birnn.hmm.model._SAMPLE_BLOCK", 1000)  # many blocks, also for one long sequence
    transition = [[0.0, 0.5, 0.5], [0.9, 0.1, 0.0], [0.2, 0.0, 0.8]]
    hmm = HMM([0.0, 0.7, 0.3], transition, [[0.0, 1.0], [0.6, 0.4], [0.5, 0.5]])
    obs, states = hmm.sample(n, T, seed=5)
    expected_obs, expected_states = _per_step_sample(hmm, n, T, 5)
    assert np.array_equal(obs, expected_obs) and np.array_equal(states, expected_states)


def test_sizes_that_cannot_be_allocated_are_refused_up_front(monkeypatch):
    monkeypatch.setattr("birnn.hmm.model.check_memory", functools.partial(check_memory, available=1 << 30))
    with pytest.raises(ValueError, match=r"an HMM of 2 states over 10,000,000,001 symbols \(1 \+ the largest symbol\) "
                                         r"needs 894.1 GiB of memory; 1.0 GiB is available"):
        HMM.fit([np.array([3, 10**10, 2])], 2)
    with pytest.raises(ValueError, match=r"sampling n=1 sequences of T=100,000,000 steps needs 1.5 GiB"):
        casino().sample(1, 10**8)
