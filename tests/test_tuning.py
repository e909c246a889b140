"""birnn.nn.tuning: kernels chosen by measurement, cached per machine; never an incorrect kernel."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from birnn.nn import Bidirectional, BiRNN, tuning
from nn_helpers import torch_reference

DOUBLE = torch.float64


@pytest.fixture
def tuned(monkeypatch, tmp_path):
    """Tuning on (conftest turns it off), a fresh cache directory; -> the cache file's path."""
    monkeypatch.setenv(tuning.ENVIRONMENT, "on")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(tuning, "_caches", {})
    monkeypatch.setattr(tuning, "BUDGET", 0.05)  # keeps the suite fast; every candidate still runs once
    return tmp_path / "birnn" / "kernels.json"


class FakeClock:
    """A clock that only moves when a step runs: step(kernel) advances it by that kernel's cost."""

    def __init__(self, costs):
        self.now, self.costs, self.calls = 0.0, costs, []

    def __call__(self):
        return self.now

    def step(self, kernel):
        self.calls.append(kernel)
        self.now += self.costs[kernel]


def test_measure_picks_the_fastest_and_alternates_within_the_budget():
    costs = {"a": 1 / 32, "b": 1 / 128, "c": 1 / 64}  # exact in binary: sums compare exactly
    clock = FakeClock(costs)
    decision = tuning.measure(["a", "b", "c"], clock.step, budget=0.25, clock=clock)
    assert decision.kernel == "b" and decision.times == costs
    assert clock.calls == ["a", "b", "c"] * 4  # the first round, then ROUNDS = 3 alternating rounds
    assert decision.seconds == 4 * sum(costs.values()) and decision.unmeasured == ()
    clock = FakeClock(costs)
    tuning.measure(["a", "b", "c"], clock.step, budget=0.15, clock=clock)
    assert len(clock.calls) == 3 * 2  # a third round would end after 0.164 s


def test_short_calls_are_timed_in_more_rounds_until_min_seconds():
    costs = {"a": 1 / 256, "b": 1 / 512}  # 3/512 s a round
    clock = FakeClock(costs)
    decision = tuning.measure(["a", "b"], clock.step, budget=1.0, clock=clock)
    rounds = len(clock.calls) // 2
    assert rounds > tuning.ROUNDS + 1 and decision.kernel == "b"
    assert (rounds - 1) * 3 / 512 < tuning.MIN_SECONDS <= rounds * 3 / 512  # stops once MIN_SECONDS are spent


def test_measure_stops_when_the_budget_is_spent():
    clock = FakeClock({"rule": 0.6, "other": 0.7, "third": 0.1})
    decision = tuning.measure(["rule", "other", "third"], clock.step, budget=1.0, clock=clock)
    assert clock.calls == ["rule", "other"]  # no third candidate once 1 s is spent, no second round
    assert decision.kernel == "rule" and decision.unmeasured == ("third",)
    assert "not measured (budget spent): third" in decision.describe()


def test_buckets_and_the_environment_switch(monkeypatch):
    assert [tuning.bucket(n) for n in (1, 2, 3, 50, 64, 65)] == [1, 2, 4, 64, 64, 128]
    for value, expected in (("off", False), ("0", False), ("ON", True), ("", True), ("remeasure", True)):
        monkeypatch.setenv(tuning.ENVIRONMENT, value)
        assert tuning.enabled() is expected
    monkeypatch.setenv(tuning.ENVIRONMENT, "sometimes")
    with pytest.raises(ValueError, match="BIRNN_KERNEL_TUNING must be one of .* got 'sometimes'"):
        tuning.enabled()


def test_a_new_key_is_measured_cached_and_reused_by_a_new_process(tuned, monkeypatch):
    model = BiRNN(3, 4, cell="lstm").to(DOUBLE)
    x, lengths = torch.randn(3, 5, 3, dtype=DOUBLE, requires_grad=True), torch.tensor([5, 2, 4])
    state = torch.get_rng_state()
    result = model(x, lengths)
    assert torch.equal(torch.get_rng_state(), state)  # measuring leaves the random stream alone
    assert all(p.grad is None for p in model.parameters()) and x.grad is None  # and every .grad
    decision = model.tuning
    assert decision is not None and decision.source == "measured"
    assert set(decision.times) == {"fused-packed", "hand-bptt", "per-direction"}  # never the padded fused call
    assert model.kernel == decision.kernel == min(decision.times, key=decision.times.get)
    assert "fastest correct kernel for lstm I=3 H=4/4 L=1 concat float64 train+dx varying B≤4 T≤8" in model.explain()
    assert "ms" in model.explain() and "measured in" in model.explain()
    document = json.loads(tuned.read_text())
    (entries,) = document["machines"].values()
    (key,) = entries
    assert entries[key]["kernel"] == decision.kernel and key.startswith("lstm I=3 H=4/4")
    model.force_kernel = "per-direction"  # the choice gives the same values as any other kernel
    torch.testing.assert_close(result.output, model(x, lengths).output, atol=1e-12, rtol=0)

    monkeypatch.setattr(tuning, "_caches", {})  # a new process: only the file remains

    def refuse(*args, **kwargs):
        raise AssertionError("a cached key must not be measured again")

    monkeypatch.setattr(tuning, "measure", refuse)
    again = BiRNN(3, 4, cell="lstm").to(DOUBLE)
    again(torch.randn(4, 7, 3, dtype=DOUBLE, requires_grad=True), torch.tensor([7, 1, 3, 2]))  # same buckets
    assert again.kernel == decision.kernel and again.tuning.source == str(tuned)
    assert f"from {tuned}" in again.explain()


def test_remeasure_measures_a_cached_key_again_once_and_rewrites_the_file(tuned, monkeypatch):
    x, lengths = torch.randn(3, 5, 3, dtype=DOUBLE, requires_grad=True), torch.tensor([5, 2, 4])
    BiRNN(3, 4, cell="lstm").to(DOUBLE)(x, lengths)
    (entries,) = json.loads(tuned.read_text())["machines"].values()
    (key,) = entries
    entries[key] |= {"kernel": "per-direction", "times": {"per-direction": 9.0}}  # as if measured on a busy day
    tuned.write_text(json.dumps({"format": tuning.FORMAT, "machines": {tuning.machine(): entries}}))
    monkeypatch.setattr(tuning, "_caches", {})  # a new process
    monkeypatch.setenv(tuning.ENVIRONMENT, "remeasure")
    calls = []
    measure = tuning.measure
    monkeypatch.setattr(tuning, "measure", lambda *a, **k: calls.append(1) or measure(*a, **k))
    model = BiRNN(3, 4, cell="lstm").to(DOUBLE)
    model(x, lengths)
    model(x, lengths)  # measured once in the process, then reused
    assert calls == [1] and model.tuning.source == "measured"
    (rewritten,) = json.loads(tuned.read_text())["machines"].values()
    assert rewritten[key]["times"] == model.tuning.times != {"per-direction": 9.0}


def test_a_damaged_cache_warns_and_is_rewritten(tuned):
    tuned.parent.mkdir(parents=True)
    tuned.write_text('{"format": 1, "machines": [')
    model = BiRNN(3, 4, cell="gru")
    with pytest.warns(RuntimeWarning, match="ignoring the damaged kernel-tuning cache"):
        model(torch.randn(2, 4, 3), torch.tensor([4, 2]))
    assert model.tuning is not None and model.tuning.source == "measured"
    assert json.loads(tuned.read_text())["format"] == tuning.FORMAT


def test_a_cached_kernel_that_is_wrong_for_the_call_is_never_used(tuned):
    model = BiRNN(3, 4, cell="lstm")
    model(torch.randn(2, 4, 3))  # equal lengths: the padded fused call is a candidate
    document = json.loads(tuned.read_text())
    (entries,) = document["machines"].values()
    (text,) = entries
    entries[text.replace(" equal ", " varying ")] = {"kernel": "fused", "times": {"fused": 1e-9}, "seconds": 0}
    tuned.write_text(json.dumps(document))
    tuning._caches.clear()
    x, lengths = torch.randn(2, 4, 3), torch.tensor([4, 2])
    out = model(x, lengths).output
    assert model.kernel != "fused" and model.tuning.source == "measured"
    reference = torch.nn.LSTM(3, 4, bidirectional=True, batch_first=True)
    reference.load_state_dict(model.state_dict())
    torch.testing.assert_close(out, torch_reference(reference, x, lengths)[0], atol=1e-5, rtol=0)


def test_force_kernel_and_the_switch_turn_measuring_off(tuned, monkeypatch):
    model = BiRNN(3, 4, cell="rnn")
    x, lengths = torch.randn(2, 4, 3), torch.tensor([4, 2])
    model.force_kernel = "per-direction"
    model(x, lengths)
    assert model.kernel == "per-direction" and model.tuning is None and "forced" in model.explain()
    model.force_kernel = None
    monkeypatch.setenv(tuning.ENVIRONMENT, "off")
    model(x, lengths)
    assert model.kernel == "hand-bptt" and model.tuning is None and "training a rnn_tanh" in model.explain()
    assert not tuned.exists()


def test_an_unwritable_cache_keeps_choices_in_memory(tuned):
    tuned.parent.write_text("a file where the cache directory should be")  # even root cannot mkdir here
    model = BiRNN(3, 4, cell="gru")
    with pytest.warns(RuntimeWarning, match="cannot write the kernel-tuning cache"):
        model(torch.randn(2, 4, 3))
    first = model.tuning
    assert first is not None
    model(torch.randn(2, 4, 3))
    assert model.tuning is first  # the same decision, from memory


@pytest.mark.parametrize("grad", [False, True])
def test_bidirectional_measures_each_direction_and_matches_either_kernel(tuned, grad):
    torch.manual_seed(2)
    bi = Bidirectional(nn.LSTM(3, 6, batch_first=True), nn.GRU(3, 4, batch_first=True)).to(DOUBLE)
    x, lengths = torch.randn(4, 7, 3, dtype=DOUBLE, requires_grad=grad), torch.tensor([7, 2, 5, 1])
    with torch.set_grad_enabled(grad):
        result = bi(x, lengths).output
    assert x.grad is None and all(p.grad is None for p in bi.parameters())  # measuring touches no .grad
    assert set(bi.kernels) <= {"padded", "packed"}
    mode = "train+dx" if grad else "infer"
    for cell, hidden, part in (("lstm", 6, "forward"), ("gru", 4, "backward")):
        assert f"{part}: " in bi.explain()
        assert f"fastest for {cell} I=3 H={hidden} L=1 one-direction float64 {mode} varying B≤4 T≤8" in bi.explain()
    (entries,) = json.loads(tuned.read_text())["machines"].values()
    assert sorted(entries) == sorted(f"{c} I=3 H={h} L=1 one-direction float64 {mode} varying B≤4 T≤8 threads="
                                     f"{torch.get_num_threads()}" for c, h in (("lstm", 6), ("gru", 4)))
    for kernel in ("padded", "packed"):
        bi.force_kernel = kernel
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(bi(x, lengths).output, result, atol=1e-12, rtol=0)
    bi.force_kernel = "fused"
    with pytest.raises(ValueError, match=r"force_kernel must be None or one of \('padded', 'packed'\); got 'fused'"):
        bi(x, lengths)
