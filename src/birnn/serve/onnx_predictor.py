"""``OnnxPredictor``: an exported model (``birnn export``) run by onnxruntime, with NumPy only — no torch.

It reads ``model.onnx`` and the ``model.json`` beside it (``serve.onnx_export``), featurises sentences
as the task did in training (word ids, looked up lower-cased when the JSON says so; character
vectors from the character graph ``model.chars.onnx``, each distinct word encoded once
(``serve.char_cache``); word shapes by ``data.characters.word_shape``),
and returns what ``Predictor`` returns: tag lists, (length, len(labels)) probability arrays in the
data's labels, (length, 2H) features, in input order (``batched.SortedBatches``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from birnn.data.characters import CharBatcher, word_shape_ids
from birnn.data.tagschemes import bioes_to_bio
from birnn.data.textclass import ngrams
from birnn.data.vocab import Vocab
from birnn.serve.batched import SortedBatches
from birnn.serve.char_cache import CharVectorCache
from birnn.serve.length_groups import length_groups

FORMAT = "birnn-onnx"
VERSION = 2  # 1: one graph that read every token's characters
# the cost model of length_groups for onnxruntime's CPU LSTM: a step's fixed cost is that of about
# STEP_ROWS more rows, a call's (graph launch, slicing) that of CALL_CELLS more padded cells
STEP_ROWS, CALL_CELLS = 8.0, 32.0
BY_TOKEN = ("words", "char_vectors", "shapes")  # inputs with a time axis, cut to a group's longest sentence
OUTPUT_OF = {"predict": ("tags",), "predict_proba": ("probabilities",),
             "predict_with_proba": ("tags", "probabilities"), "embed": ("features",)}


def find_model(path: str | Path) -> Path:
    """An ``.onnx`` file, or a directory holding exactly one besides character graphs
    (``*.chars.onnx``; ``model.onnx`` preferred)."""
    path = Path(path)
    if path.is_dir():
        if (path / "model.onnx").is_file():
            return path / "model.onnx"
        found = sorted(p for p in path.glob("*.onnx") if not p.name.endswith(".chars.onnx"))
        if len(found) != 1:
            raise OSError(f"{path}: expected one .onnx file (birnn export RUN --to {path}/model.onnx); "
                          f"found {len(found)}")
        return found[0]
    if path.suffix != ".onnx" or not path.is_file():
        raise OSError(f"{path}: no such .onnx file or directory")
    return path


def read_config(onnx_path: Path) -> dict[str, Any]:
    """The JSON ``serve.onnx_export`` wrote next to ``onnx_path``, checked for its format."""
    json_path = onnx_path.with_suffix(".json")
    try:
        config = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OSError(f"{json_path}: missing; it is written by birnn export beside the .onnx file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{json_path}:{exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not a birnn export description (format {FORMAT!r} expected)")
    if config.get("version") != VERSION:
        raise ValueError(f"{json_path}: format version {config.get('version')!r}; this birnn reads version "
                         f"{VERSION}: export the run again (birnn export RUN --to {onnx_path})")
    return config


def _session(path: Path, threads: int | None, spin: bool = True) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads; ``spin``: whether idle threads
    spin waiting for work (faster answers) or sleep (the cores free for other work)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxPredictor(SortedBatches):
    """``OnnxPredictor(path, batch_size=256, threads=None)``: path is an ``.onnx`` file or a directory
    holding one; threads: onnxruntime's intra-op threads (None: its default, one per core).
    ``clear_cache()`` forgets the character vectors of the words seen so far."""

    def __init__(self, path: str | Path, batch_size: int = 256, threads: int | None = None) -> None:
        super().__init__(batch_size)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an integer >= 1; got {threads!r}")
        self.path = find_model(path)
        self.config = config = read_config(self.path)
        self.session = _session(self.path, threads)
        self.words = {word: i for i, word in enumerate(config["words"])}
        self.ngrams = {ngram: i for i, ngram in enumerate(config.get("ngrams", []))}
        self.inputs = list(config["inputs"])
        self._char_vectors = self._char_cache(config, threads) if "char_vectors" in self.inputs else None
        self._merge = np.zeros((len(config["tags"]), len(config["labels"])), dtype=np.float32)
        self._merge[np.arange(len(config["tags"])), config["label_index"]] = 1  # internal tag -> its label
        self._bioes_to_bio = config.get("network_scheme") == "bioes" and config.get("scheme") == "bio"
        self._per_sentence = config.get("level") == "sentence"  # a classifier: one row per sentence

    def _char_cache(self, config: dict[str, Any], threads: int | None) -> CharVectorCache:
        graph = config["char_encoder"]
        path = self.path.parent / graph["file"]
        if not path.is_file():
            raise OSError(f"{path}: missing; birnn export writes this character graph beside {self.path.name}")
        # its threads sleep when it is done, rather than spin against the main graph's for the cores
        session = _session(path, threads, spin=False)
        names = graph["inputs"]

        def encode(chars: np.ndarray, lengths: np.ndarray) -> np.ndarray:
            return session.run(graph["outputs"], {names[0]: chars, names[1]: lengths})[0]

        return CharVectorCache(encode, CharBatcher(Vocab(config["chars"]), config["max_word_length"]), graph["size"])

    def clear_cache(self) -> None:
        """Forget the character vectors of every word seen (they are recomputed when met again)."""
        if self._char_vectors is not None:
            self._char_vectors.clear()

    @property
    def kind(self) -> str:
        return str(self.config["kind"])

    @property
    def labels(self) -> list[str]:
        return list(self.config["labels"])

    def tokenize(self, text: str) -> list[str]:
        """Raw text cut as the classifier was trained (``tokenizer`` of the JSON; whitespace otherwise)."""
        from birnn.data.textclass import tokenize

        return tokenize(text, self.config.get("tokenizer", "whitespace"))

    def _word_ids(self, tokens: list[str]) -> list[int]:
        if self.config.get("blank") is not None:  # a cloze model: blanks are read as <mask>
            tokens = [self.config["mask"] if t == self.config["blank"] else t for t in tokens]
        return [self.words.get(t, 1) for t in self._lookup(tokens)]

    def _lookup(self, tokens: list[str]) -> list[str]:
        return [t.lower() for t in tokens] if self.config["lowercase"] else tokens

    def features(self, sentences: list[list[str]]) -> dict[str, np.ndarray]:
        """The graph's inputs for a batch of sentences: words, lengths (B, T) / (B,) int64 and the
        character vectors (B, T, D) float32, shapes (B, T) int64 and n-gram ids (B, F) int64 the
        model reads."""
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        steps = int(lengths.max())
        feeds = {"words": np.zeros((len(sentences), steps), dtype=np.int64), "lengths": lengths}
        for row, tokens in enumerate(sentences):
            feeds["words"][row, : len(tokens)] = self._word_ids(tokens)
        if self._char_vectors is not None:
            feeds["char_vectors"] = self._char_vectors(sentences, steps)
        if "ngrams" in self.inputs:  # each sentence's distinct n-gram ids, 0-padded (unseen: <unk>, no score)
            ids = [[self.ngrams.get(g, 1) for g in ngrams(self._lookup(tokens), self.config["ngram_order"])]
                   for tokens in sentences]
            feeds["ngrams"] = np.zeros((len(sentences), max(map(len, ids))), dtype=np.int64)
            for row, found in enumerate(ids):
                feeds["ngrams"][row, : len(found)] = found
        if "shapes" in self.inputs:
            feeds["shapes"] = np.zeros((len(sentences), steps), dtype=np.int64)
            for row, tokens in enumerate(sentences):
                feeds["shapes"][row, : len(tokens)] = word_shape_ids(tokens)
        return feeds

    def _predict_batch(self, method: str, sentences: list[list[str]]) -> list[Any]:
        """The batch featurised once, then run in groups of similar lengths (``serve.length_groups``):
        onnxruntime's recurrent nodes compute every padded step, so a batch is cut where the padding
        it saves outweighs the cost of one more call."""
        if method not in OUTPUT_OF:
            raise TypeError(f"an exported {self.kind} model has no {method}()")
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        ordered = [sentences[i] for i in order]
        feeds = self.features(ordered)
        lengths = feeds["lengths"]
        results: list[Any] = [None] * len(sentences)
        for start, end in length_groups(lengths, STEP_ROWS, CALL_CELLS):
            steps = int(lengths[end - 1])
            group = {name: np.ascontiguousarray(value[start:end, :steps] if value.ndim > 1 and name in BY_TOKEN
                                                else value[start:end])
                     for name, value in feeds.items()}
            for i, result in zip(order[start:end], self._predict_group(method, ordered[start:end], group),
                                 strict=True):
                results[i] = result
        return results

    def _predict_group(self, method: str, sentences: list[list[str]], feeds: dict[str, np.ndarray]) -> list[Any]:
        names = OUTPUT_OF[method]
        outputs = dict(zip(names, self.session.run(list(names), feeds), strict=True))
        if self._per_sentence:
            return self._per_sentence_results(names, outputs)
        lengths = [len(tokens) for tokens in sentences]
        columns: dict[str, list[Any]] = {}
        if "tags" in outputs:
            columns["tags"] = [self._tags(row[:n]) for row, n in zip(outputs["tags"], lengths, strict=True)]
        if "probabilities" in outputs:
            p = outputs["probabilities"] @ self._merge  # (B, T, len(labels))
            columns["probabilities"] = [row[:n] for row, n in zip(p, lengths, strict=True)]
        if "features" in outputs:
            columns["features"] = [row[:n] for row, n in zip(outputs["features"], lengths, strict=True)]
        rows = [columns[name] for name in names]
        return rows[0] if len(rows) == 1 else list(zip(*rows, strict=True))

    def _per_sentence_results(self, names: tuple[str, ...], outputs: dict[str, np.ndarray]) -> list[Any]:
        """A classifier's rows: the label string, its (K,) probabilities, its pooled vector."""
        columns = {name: list(value) for name, value in outputs.items()}
        if "tags" in columns:
            columns["tags"] = [self.config["labels"][int(i)] for i in outputs["tags"]]
        rows = [columns[name] for name in names]
        return rows[0] if len(rows) == 1 else list(zip(*rows, strict=True))

    def _tags(self, ids: np.ndarray) -> list[str]:
        tags = [self.config["tags"][i] for i in ids.tolist()]
        return bioes_to_bio(tags) if self._bioes_to_bio else tags
