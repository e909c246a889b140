"""`birnn hmm …` end to end through ``birnn.cli.main``."""

from __future__ import annotations

import numpy as np

from birnn.cli import main
from birnn.hmm import HMM, casino


def test_casino_prints_blocks_accuracies_and_plot(tmp_path, capsys):
    plot = tmp_path / "casino.png"
    assert main(["hmm", "casino", "--rolls", "130", "--seed", "1", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    blocks = [line for line in out.splitlines() if line.startswith("Rolls")]
    assert [len(line.split()[1]) for line in blocks] == [60, 60, 10]
    assert "accuracy, posterior decoding" in out and "accuracy, filtering (forward only)" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_then_decode(tmp_path, capsys):
    obs, _ = casino().sample(20, 200, seed=0)
    data = tmp_path / "rolls.txt"
    data.write_text("\n".join(" ".join(map(str, row)) for row in obs) + "\n")
    model = tmp_path / "m.json"
    assert main(["hmm", "fit", str(data), "--states", "2", "--out", str(model), "--iters", "20"]) == 0
    fitted = HMM.load(model)
    assert fitted.n_states == 2 and fitted.n_symbols == 6
    capsys.readouterr()
    assert main(["hmm", "decode", str(model), str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 20
    expected, _ = fitted.viterbi(obs[0])
    assert lines[0] == " ".join(map(str, expected))


def test_bad_data_names_file_and_line(tmp_path, capsys):
    data = tmp_path / "bad.txt"
    data.write_text("0 1 2\n3 x 1\n")
    assert main(["hmm", "fit", str(data), "--states", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birnn: error: {data}:2: expected non-negative integer symbols; got 'x'"]


def test_usage_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert main(["hmm", "fit", str(tmp_path / "missing.txt"), "--states", "2"]) == 2
    assert main(["hmm", "casino", "--rolls", "0"]) == 2
    assert main(["hmm", "fit", "x.txt"]) == 2  # --states missing
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("birnn: error:") for line in errors)
    assert "missing.txt: no such file" in errors[0]


def test_decode_rejects_unknown_symbols(tmp_path, capsys):
    model = tmp_path / "m.json"
    casino().save(model)
    data = tmp_path / "d.txt"
    data.write_text("0 1 9\n")
    assert main(["hmm", "decode", str(model), str(data)]) == 2
    assert "symbol 9" in capsys.readouterr().err
    np.testing.assert_array_equal(HMM.load(model).start, casino().start)
