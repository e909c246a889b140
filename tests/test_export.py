"""ONNX export checked in onnxruntime: every output of the exported graph equals torch's to 1e-5 on
padded batches of mixed lengths, batch size 1, length 1 and lengths longer than the trace's; the
CRF's Viterbi path in ONNX is torch's decode; the NumPy featurisation of ``OnnxPredictor`` equals the
task's own; ``birnn predict --engine onnx`` never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from birnn.cli import main  # noqa: E402
from birnn.nn import BiRNN  # noqa: E402
from birnn.nn.exportable import packed_rnn  # noqa: E402
from birnn.serve import OnnxPredictor, Predictor, export  # noqa: E402
from birnn.tasks import ClozeConfig, ClozeTask, LanguageModelTask, LMConfig, TaggerConfig, TaggingTask  # noqa: E402
from birnn.tasks.exportable import EXAMPLE  # noqa: E402
from birnn.train import TrainConfig, Trainer  # noqa: E402

WORDS = ["Ann", "lee", "Paris", "met", "in", "http://a.org", "@bo", "#x", "1999", "3.5", "--", "well-known",
         "iPhone", "USA", "supercalifragilisticexpialidocious-and-more", "zzz"]
TAGS = ["B-PER", "I-PER", "O", "B-LOC"]
CONFIGS = {
    "bilstm-chars-shapes-crf-bioes": TaggerConfig(hidden=6, embedding=5, chars="lstm", char_hidden=4,
                                                  shape_embedding=3, crf=True, scheme="bioes", lowercase=True),
    "bigru-cnn-2layers": TaggerConfig(model="bigru", hidden=6, embedding=5, chars="cnn", char_hidden=4, layers=2),
    "bigru-crf": TaggerConfig(model="bigru", hidden=5, embedding=4, crf=True),
    "bilstm": TaggerConfig(hidden=5, embedding=4, layers=2),
    "bielman": TaggerConfig(model="bielman", hidden=5, embedding=4),
}


def _sentences(n: int, seed: int, longest: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(1, longest + 1)))] for _ in range(n)]


def _training_data() -> list[tuple[list[str], list[str]]]:
    rng = np.random.default_rng(0)
    data = []
    for tokens in _sentences(12, 1, 6):
        tags = ["O"] * len(tokens)
        start = int(rng.integers(len(tokens)))
        tags[start] = "B-PER" if start % 2 else "B-LOC"
        if tags[start] == "B-PER" and start + 1 < len(tokens):
            tags[start + 1] = "I-PER"
        data.append((tokens, tags))
    return data


def _randomise_crf(task: TaggingTask) -> None:
    if task.network.crf is not None:  # zeros at initialisation: make the transitions matter
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(3)
            for parameter in task.network.crf.parameters():
                parameter.normal_()


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def exported(request, tmp_path_factory):
    task = TaggingTask.for_data(CONFIGS[request.param], _training_data())
    _randomise_crf(task)
    path = tmp_path_factory.mktemp(request.param) / "model.onnx"
    export(task, path)
    return task, path


def _batches():
    """Mixed lengths, batch size 1, length 1, and lengths far beyond the trace's (4 tokens)."""
    longest = max(len(s) for s in EXAMPLE)
    return [_sentences(6, 2, 7), _sentences(1, 3, 5), [["Ann"]], [["Ann"], ["x"] * 3],
            _sentences(3, 4, 12 * longest)]


def _feeds(task, path, batch):
    """The graph's inputs for a task's batch as a program without birnn builds them from the JSON:
    character vectors from the character graph run on the batch's real words."""
    import onnxruntime

    config = json.loads(path.with_suffix(".json").read_text())
    fields = {"words": batch.inputs, "lengths": batch.lengths, "shapes": batch.shapes}
    feeds = {name: fields[name].numpy() for name in config["inputs"] if name != "char_vectors"}
    if "char_vectors" in config["inputs"]:
        graph = config["char_encoder"]
        chars = onnxruntime.InferenceSession(str(path.parent / graph["file"]), providers=["CPUExecutionProvider"])
        mask = batch.char_lengths.numpy() > 0
        words = {"chars": batch.chars.numpy()[mask], "char_lengths": batch.char_lengths.numpy()[mask]}
        vectors = np.zeros((*mask.shape, graph["size"]), dtype=np.float32)
        vectors[mask] = chars.run(graph["outputs"], words)[0]
        feeds["char_vectors"] = vectors
    return feeds


def test_onnxruntime_equals_torch_on_padded_batches(exported):
    import onnxruntime

    task, path = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for sentences in _batches():
        batch = task.collate([task.encode_input(tokens) for tokens in sentences])
        feeds = _feeds(task, path, batch)
        if "char_vectors" in feeds:
            with torch.no_grad():
                want_vectors = task.network.chars(batch.chars, batch.char_lengths).numpy()
            np.testing.assert_allclose(feeds["char_vectors"], want_vectors, atol=1e-5)
        scores, tags, probabilities, features = session.run(None, feeds)
        valid = (np.arange(batch.inputs.shape[1])[None, :] < batch.lengths.numpy()[:, None])[..., None]
        with torch.no_grad():
            emissions = task._emissions(batch)
            want_features = task.network.features(batch.inputs, batch.lengths, batch.chars, batch.char_lengths,
                                                  batch.shapes)
            want_p = task._marginals(emissions, batch.lengths, task.network.crf)
        np.testing.assert_allclose(scores, emissions.numpy() * valid, atol=1e-5)
        np.testing.assert_allclose(features, want_features.numpy(), atol=1e-5)
        np.testing.assert_allclose(probabilities, want_p.numpy(), atol=1e-5)
        with torch.no_grad():  # the CRF's Viterbi (or the argmax) of torch, path by path
            want_tags = task.predict_ids(batch)
        assert [row[:n].tolist() for row, n in zip(tags, batch.lengths.tolist(), strict=True)] == want_tags
        assert not (tags * ~valid[..., 0]).any() and not (probabilities * ~valid).any()


def test_onnx_predictor_equals_the_torch_predictor(exported):
    task, path = exported
    onnx, eager = OnnxPredictor(path.parent, batch_size=4, threads=1), Predictor(task, batch_size=3)
    sentences = _sentences(9, 5, 9)
    assert onnx.labels == eager.labels and onnx.kind == "tagging"
    assert onnx.predict(sentences) == eager.predict(sentences)
    for got, want in zip(onnx.predict_proba(sentences), eager.predict_proba(sentences), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    for got, want in zip(onnx.embed(sentences), eager.embed(sentences), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    stream = list(onnx.stream([sentences[0], [], sentences[1]], chunk=2))
    assert stream == [eager.predict([sentences[0]])[0], [], eager.predict([sentences[1]])[0]]


def test_onnx_batches_cut_by_length_predict_as_one(exported, monkeypatch):
    """Every distinct length its own onnxruntime call (free calls) or the whole batch in one: the
    same tags, probabilities and features as the torch predictor, in input order."""
    import birnn.serve.onnx_predictor as onnx_predictor

    task, path = exported
    sentences = _sentences(11, 9, 10)
    eager = Predictor(task, batch_size=16)
    for costs in ((0.0, 0.0), (0.0, 1e9)):
        monkeypatch.setattr(onnx_predictor, "STEP_ROWS", costs[0])
        monkeypatch.setattr(onnx_predictor, "CALL_CELLS", costs[1])
        onnx = OnnxPredictor(path.parent, batch_size=16, threads=1)
        assert onnx.predict(sentences) == eager.predict(sentences)
        for got, want in zip(onnx.predict_proba(sentences), eager.predict_proba(sentences), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)
        for got, want in zip(onnx.embed(sentences), eager.embed(sentences), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_numpy_featurisation_equals_the_tasks(exported):
    """Word, length and shape ids exactly; the cached character vectors to 1e-5 of encoding every
    token, in a first batch and in a second that meets some words again."""
    task, path = exported
    predictor = OnnxPredictor(path)
    for sentences in (_sentences(5, 6, 8), _sentences(7, 8, 11)):
        feeds = predictor.features(sentences)
        batch = task.collate([task.encode_input(tokens) for tokens in sentences])
        want = _feeds(task, path, batch)
        assert set(feeds) == set(want) == set(json.loads(path.with_suffix(".json").read_text())["inputs"])
        for name, value in feeds.items():
            np.testing.assert_allclose(value, want[name], atol=1e-5, err_msg=name)
            assert value.dtype == want[name].dtype, name


def test_exported_cloze_model_fills_as_torch(tmp_path):
    text = list("the time machine by h. g. wells")
    task = ClozeTask.for_tokens(ClozeConfig(model="bigru", hidden=6, embedding=5), text)
    export(task, tmp_path / "cloze.onnx")
    model = OnnxPredictor(tmp_path / "cloze.onnx")
    text = "the t_me m_chine"
    p = model.predict_proba([list(text)])[0]  # (length, V), blanks read as <mask>
    for blank, candidates in zip([i for i, c in enumerate(text) if c == "_"], task.fill(text, top=3), strict=True):
        best = np.argsort(-p[blank])[:3]
        assert [model.labels[i] for i in best] == [token for token, _ in candidates]
        np.testing.assert_allclose(p[blank][best], [q for _, q in candidates], atol=1e-5)


def test_what_cannot_be_exported_is_refused(tmp_path):
    task = TaggingTask.for_data(CONFIGS["bilstm"], _training_data())
    with pytest.raises(ValueError, match=r"\.onnx"):
        export(task, tmp_path / "model.bin")
    with pytest.raises(OSError, match="no such directory"):
        export(task, tmp_path / "missing" / "model.onnx")
    with pytest.raises(ValueError, match="cannot be exported"):
        export(LanguageModelTask.for_text(LMConfig(hidden=4), "abcabc"), tmp_path / "lm.onnx")
    with pytest.raises(ValueError, match="merge='concat'"):
        packed_rnn(BiRNN(3, 4, merge="sum"))
    with pytest.raises(OSError, match="one .onnx file"):
        OnnxPredictor(tmp_path)
    (tmp_path / "alone.onnx").write_bytes(b"")
    with pytest.raises(OSError, match="alone.json: missing"):
        OnnxPredictor(tmp_path / "alone.onnx")
    (tmp_path / "alone.json").write_text(json.dumps({"format": "birnn-onnx", "version": 1}))
    with pytest.raises(ValueError, match="format version 1; this birnn reads version 2: export the run again"):
        OnnxPredictor(tmp_path / "alone.onnx")


def test_export_and_predict_from_the_command_line_without_torch(tmp_path, capsys):
    """`birnn export` then `birnn predict --engine onnx` in a fresh process: the same tags as the
    torch engine, and torch never imported."""
    data = _training_data()
    task = TaggingTask.for_data(CONFIGS["bilstm-chars-shapes-crf-bioes"], data)
    Trainer(task, task.encode(data), None, TrainConfig(epochs=1, batch_size=4), tmp_path / "run",
            progress=False).fit()
    assert main(["export", str(tmp_path / "run"), "--to", str(tmp_path / "model.onnx")]) == 0
    text = tmp_path / "input.txt"
    text.write_text("\n".join(" ".join(s) for s in _sentences(20, 7, 10)) + "\n\nAnn met Lee\n")
    script = (
        "import sys\nfrom birnn.cli import main\n"
        f"code = main(['predict', {str(tmp_path)!r}, {str(text)!r}, '--engine', 'onnx', '--format', 'json'])\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\nsys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("no torch") and "tokens/s" in done.stderr
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(text), "--format", "json", "--device", "cpu"]) == 0
    eager = capsys.readouterr()
    onnx_records = [json.loads(line) for line in done.stdout.splitlines()]
    torch_records = [json.loads(line) for line in eager.out.splitlines()]
    assert [r["tags"] for r in onnx_records] == [r["tags"] for r in torch_records]
    assert len(onnx_records) == 22
    for got, want in zip(onnx_records, torch_records, strict=True):
        np.testing.assert_allclose(got["p"], want["p"], atol=1e-5)
    assert main(["predict", str(tmp_path / "run"), "--engine", "onnx"]) == 2  # a run directory holds no .onnx


@pytest.mark.parametrize("pool, chars, nb", [("summary", "lstm", 0), ("attention", "none", 0), ("max", "cnn", 2)])
def test_exported_classifier_equals_torch(tmp_path, pool, chars, nb):
    from birnn.tasks.classifier import ClassificationTask, ClassifierConfig

    examples = [(["good", "film", "really"], "pos"), (["bad", "movie"], "neg"), (["fine"], "pos"),
                (["awful", "really", "bad", "plot"], "neg")]
    config = ClassifierConfig(model="bigru" if chars == "none" else "bilstm", pool=pool, chars=chars, hidden=5,
                              embedding=4, char_hidden=3, nb_ngrams=nb)
    task = ClassificationTask.for_data(config, examples)
    export(task, tmp_path / "classifier.onnx")
    onnx, eager = OnnxPredictor(tmp_path / "classifier.onnx"), Predictor(task)
    sentences = [["good", "bad", "zzz"] * k for k in range(1, 12)] + [["fine"]]
    assert onnx.kind == "classify" and onnx.labels == eager.labels
    assert onnx.predict(sentences) == eager.predict(sentences)
    for got, want in zip(onnx.predict_with_proba(sentences), eager.predict_with_proba(sentences), strict=True):
        assert got[0] == want[0]
        np.testing.assert_allclose(got[1], want[1], atol=1e-5)
    for got, want in zip(onnx.embed(sentences), eager.embed(sentences), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert onnx.tokenize("a film, really") == eager.tokenize("a film, really")


def test_the_character_graph_is_found_beside_the_model_and_its_absence_named(exported, tmp_path):
    import shutil

    task, path = exported
    if task.network.chars is None:
        pytest.skip("no character graph")
    assert (path.parent / "model.chars.onnx").is_file()
    assert OnnxPredictor(path.parent).path == path  # model.chars.onnx is not a second model
    for name in ("tagger.onnx", "tagger.json"):
        shutil.copy(path.with_suffix(name.removeprefix("tagger")), tmp_path / name)
    with pytest.raises(OSError, match=r"model\.chars\.onnx: missing"):
        OnnxPredictor(tmp_path)


@pytest.mark.parametrize("name, ops", [("bilstm-chars-shapes-crf-bioes", ["LSTM", "MatMul"]),
                                       ("bigru-crf", ["MatMul"])])
def test_int8_export_stays_close_to_the_float_export(tmp_path, name, ops):
    """--quantize int8: the LSTM and MatMul weights become int8 (GRU nodes have no quantised kernel
    and stay float), the JSON records the example's gaps, and predictions stay near float32's
    (probabilities within 0.05, at least 95% of the tags equal)."""
    import onnx

    task = TaggingTask.for_data(CONFIGS[name], _training_data())
    _randomise_crf(task)
    for folder in ("float", "int8"):
        (tmp_path / folder).mkdir()
    export(task, tmp_path / "float" / "model.onnx")
    export(task, tmp_path / "int8" / "model.onnx", quantize="int8")
    record = json.loads((tmp_path / "int8" / "model.json").read_text())["quantization"]
    assert record["weights"] == "int8" and record["files"]["model.onnx"]["ops"] == ops
    if "chars" in name:
        assert record["files"]["model.chars.onnx"]["ops"] == ["LSTM"]
    kinds = {node.op_type for node in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert ("DynamicQuantizeLSTM" in kinds) == ("LSTM" in ops) and "LSTM" not in kinds
    assert ("GRU" in kinds) == ("bigru" in name)
    gaps = record["files"]["model.onnx"]["example_gaps"]
    assert 0 < gaps["probabilities"] < 0.05 and gaps["features"] < 0.05
    exact, int8 = OnnxPredictor(tmp_path / "float", threads=1), OnnxPredictor(tmp_path / "int8", threads=1)
    sentences = _sentences(30, 8, 12)
    for want, got in zip(exact.predict_proba(sentences), int8.predict_proba(sentences), strict=True):
        np.testing.assert_allclose(got, want, atol=0.05)
    pairs = [(a, b) for w, g in zip(exact.predict(sentences), int8.predict(sentences), strict=True)
             for a, b in zip(w, g, strict=True)]
    assert np.mean([a == b for a, b in pairs]) >= 0.95


def test_export_refuses_an_unknown_quantisation(tmp_path):
    task = TaggingTask.for_data(CONFIGS["bilstm"], _training_data())
    with pytest.raises(ValueError, match="quantize must be None or 'int8'; got 'int4'"):
        export(task, tmp_path / "model.onnx", quantize="int4")
    assert main(["export", "nowhere", "--to", str(tmp_path / "m.onnx"), "--quantize", "int4"]) == 2
