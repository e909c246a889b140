"""The NumPy engine's hand-written backward pass against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from birnn.reference import BiRNN, gradcheck

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]
MERGES = ["concat", "sum", "mul", "ave"]


def _x(batch=2, steps=4, features=2, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, steps, features))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("variable", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_gradcheck_grid(cell, merge, variable, layers):
    model = BiRNN(2, 2, num_layers=layers, cell=cell, merge=merge, seed=layers)
    lengths = np.array([4, 2]) if variable else None
    errors = gradcheck(model, _x(), lengths)
    assert max(errors.values()) < 1e-6, errors
    assert set(errors) == set(model.params) | {"x"}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layout", ["first_last", "summary"])
def test_gradcheck_output_layouts(cell, layout):
    model = BiRNN(2, 3, num_layers=2, cell=cell, backward_hidden_size=2, seed=5)
    errors = gradcheck(model, _x(steps=5), np.array([5, 3]), layout=layout)
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    """The check can fail: corrupt one gradient and it must report it."""
    model = BiRNN(2, 2, cell="gru", seed=0)
    original = BiRNN.backward

    def broken(self, d_out, d_summary=None):
        dx, grads = original(self, d_out, d_summary)
        grads["weight_hh_l0_reverse"] = grads["weight_hh_l0_reverse"] * 1.01
        return dx, grads

    monkeypatch.setattr(BiRNN, "backward", broken)
    errors = gradcheck(model, _x())
    assert errors["weight_hh_l0_reverse"] > 1e-4
    assert errors["weight_hh_l0"] < 1e-6


def test_float32_is_selectable():
    model = BiRNN(2, 3, dtype=np.float32)
    out = model.forward(_x())
    assert out.dtype == np.float32 and out.shape == (2, 4, 6)
    with pytest.raises(ValueError, match="float64"):
        gradcheck(model, _x())


def test_bad_input_names_the_argument():
    model = BiRNN(2, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, I\)"):
        model.forward(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="x must have 2 features"):
        model.forward(np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=4\]; got min 0"):
        model.forward(_x(), np.array([0, 4]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\)"):
        model.forward(_x(), np.array([4]))
    with pytest.raises(ValueError, match="x contains NaN"):
        model.forward(np.full((1, 4, 2), np.nan))
    model.forward(_x())
    with pytest.raises(ValueError, match=r"d_out must have the output's shape \(2, 4, 6\)"):
        model.backward(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="merge='sum' needs directions of equal size"):
        BiRNN(2, 3, backward_hidden_size=2, merge="sum")
    with pytest.raises(ValueError, match="cell must be one of"):
        BiRNN(2, 3, cell="conv")
    for merge in (None, lambda f, b: f, "max"):
        with pytest.raises(ValueError, match=r"merge must be one of \('concat', 'sum', 'mul', 'ave'\) in the NumPy"):
            BiRNN(2, 3, merge=merge)
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        BiRNN(2, 3, num_layers=0)


def test_parameters_follow_the_spec():
    """Names, shapes (torch's order) and U(-1/√H, 1/√H) initialisation come from birnn.spec."""
    from birnn.spec import StackSpec

    model = BiRNN(3, 4, num_layers=2, cell="gru", merge="concat", backward_hidden_size=2, seed=1)
    spec = StackSpec.build(3, 4, 2, "gru", "concat", backward_hidden_size=2)
    assert model.spec == spec
    assert {name: p.shape for name, p in model.params.items()} == spec.parameter_shapes()
    assert list(model.params) == list(spec.parameter_shapes())
    for name, value in model.params.items():
        assert np.abs(value).max() <= spec.init_bound(name), name
    assert BiRNN(3, 4, bias=False).params.keys() == StackSpec.build(3, 4, bias=False).parameter_shapes().keys()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backward_size", [3, 2])
def test_schedules_agree(cell, backward_size):
    """One direction after the other == one thread per direction (outputs, finals, every gradient)."""
    model = BiRNN(2, 3, num_layers=2, cell=cell, backward_hidden_size=backward_size, seed=4, schedule="sequential")
    x, lengths = _x(batch=3, steps=5), np.array([5, 2, 4])
    out = model.forward(x, lengths)
    summary = model.summary()
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx, grads = model.backward(dout, d_summary=np.ones_like(summary))
    model.schedule = "threads"
    np.testing.assert_allclose(model.forward(x, lengths), out, atol=1e-13, rtol=0)
    np.testing.assert_allclose(model.summary(), summary, atol=1e-13, rtol=0)
    dx_threads, grads_threads = model.backward(dout, d_summary=np.ones_like(summary))
    np.testing.assert_allclose(dx_threads, dx, atol=1e-13, rtol=0)
    assert grads_threads.keys() == grads.keys()
    for name, value in grads.items():
        np.testing.assert_allclose(grads_threads[name], value, atol=1e-13, rtol=0, err_msg=name)


def test_schedule_choice_and_blas_threads_restored(monkeypatch):
    from threadpoolctl import threadpool_info

    from birnn.reference import schedule

    monkeypatch.setattr(schedule, "usable_cpus", lambda: 1)
    assert BiRNN(2, 3).schedule == "sequential"
    monkeypatch.setattr(schedule, "usable_cpus", lambda: 2)
    assert BiRNN(2, 3).schedule == "threads"
    with pytest.raises(ValueError, match=r"schedule must be None or one of \('threads', 'sequential'\); got 'fast'"):
        BiRNN(2, 3, schedule="fast")
    before = [pool["num_threads"] for pool in threadpool_info()]
    model = BiRNN(2, 3, schedule="threads")
    model.backward(np.ones_like(model.forward(_x())))
    assert [pool["num_threads"] for pool in threadpool_info()] == before


def test_input_grad_false_skips_dx_only():
    model = BiRNN(2, 3, num_layers=2, cell="lstm", backward_hidden_size=2)
    x, lengths = _x(), np.array([4, 2])
    dout = np.random.default_rng(2).standard_normal(model.forward(x, lengths).shape)
    _, grads = model.backward(dout)
    model.forward(x, lengths)
    dx, grads_without = model.backward(dout, input_grad=False)
    assert dx is None
    for name, value in grads.items():
        np.testing.assert_array_equal(grads_without[name], value, err_msg=name)


def test_float32_stays_float32_through_backward():
    model = BiRNN(2, 3, num_layers=2, dtype=np.float32)
    out = model.forward(_x(), np.array([4, 2]))
    caches = [c for _, layer in model._cache["layers"] for c in layer.values()]
    cached = [a for c in caches for step in c.steps for a in step if isinstance(a, np.ndarray)]
    assert {a.dtype for a in cached} | {c.h.dtype for c in caches} == {np.dtype(np.float32)}
    dx, grads = model.backward(np.ones_like(out))
    assert dx.dtype == np.float32 and {g.dtype for g in grads.values()} == {np.dtype(np.float32)}


def test_inference_without_cache():
    model = BiRNN(2, 3, num_layers=2, cell="gru", backward_hidden_size=2)
    x, lengths = _x(), np.array([4, 2])
    out = model.forward(x, lengths)
    summary = model.summary()
    np.testing.assert_array_equal(model.forward(x, lengths, keep_cache=False), out)
    np.testing.assert_array_equal(model.summary(), summary)
    with pytest.raises(RuntimeError, match="keep_cache=True"):
        model.backward(np.ones_like(out))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradcheck_without_bias(cell):
    model = BiRNN(2, 2, cell=cell, bias=False, seed=2)
    errors = gradcheck(model, _x(), np.array([4, 2]))
    assert set(errors) == {"weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse", "x"}
    assert max(errors.values()) < 1e-6, errors
