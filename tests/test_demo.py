"""`birnn demo`: a fast smoke run here; the claims of the full run under `make test-slow`."""

from __future__ import annotations

import json

import pytest

from birnn.cli import main
from birnn.experiments.demo import DemoConfig, run_demo


def test_demo_smoke(tmp_path, capsys):
    args = ["demo", "--epochs", "1", "--train-size", "200", "--length", "20", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for method in ("forward-only filtering", "forward-backward posterior", "Viterbi", "LSTM tagger", "BiLSTM tagger"):
        assert method in out
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    rows = dict(json.loads((tmp_path / "demo.json").read_text())["rows"])
    assert rows["forward-backward posterior (best possible)"] >= rows["forward-only filtering (best left-to-right)"]


def test_demo_rejects_bad_options(capsys):
    assert main(["demo", "--states", "1"]) == 2
    assert "birnn: error:" in capsys.readouterr().err


@pytest.mark.slow
def test_full_demo_reaches_both_optima(tmp_path):
    """BiLSTM within 1 point of the smoother, LSTM within 1 point of the filter, optima several points apart."""
    result = run_demo(DemoConfig(), tmp_path, progress=False, log=lambda *_: None)
    filtering, smoothing = result.accuracy("forward-only"), result.accuracy("forward-backward")
    assert smoothing - filtering > 0.05
    assert abs(result.accuracy("BiLSTM") - smoothing) < 0.01
    assert abs(result.accuracy("LSTM") - filtering) < 0.01
