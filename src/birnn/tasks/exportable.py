"""What a task hands to the ONNX exporter: a module with plain tensor inputs, example inputs, the
names of inputs and outputs, and the JSON that makes the exported file usable without birnn.

``onnx_graph(task) -> OnnxGraph`` builds it with the builder ``GRAPHS`` holds for the task's
``kind`` (a new task adds one function and one entry); ``birnn.serve.onnx_export`` traces ``module``
on ``inputs`` and writes ``config`` next to the ``.onnx`` file. Every graph takes ``words`` (B, T)
int64 and ``lengths`` (B,) int64 first, dynamic in B and T; outputs are zero at padding.

A network that reads characters has two graphs: ``chars`` (``OnnxGraph.chars``) maps a flat batch of
words, chars (N, C) and char_lengths (N,), to char_vectors (N, D) (``nn.exportable.WordChars``);
the main graph reads char_vectors (B, T, D), zero at padding, in their place. A caller encodes each
distinct word once and gathers its vector for every occurrence (``serve.char_cache``).

``TaggerGraph`` is the ``Tagger`` network (word ⊕ character ⊕ shape features, encoder, linear
output, optional CRF) rebuilt from ``birnn.nn.exportable`` pieces with the same weights:

    scores         (B, T, K) float   emission scores u_t
    tags           (B, T) int64      the CRF's Viterbi path, or argmax_k u_t(k)
    probabilities  (B, T, K) float   CRF marginals p(y_t = k | x), or softmax(u_t)
    features       (B, T, 2H) float  the encoder's token features (``embed``)

``ClassifierGraph`` is the ``Classifier`` (word ⊕ character features, encoder, pooling, linear
output, Naive Bayes scores); its outputs have the same names, one row per sentence (``"level":
"sentence"`` in the JSON): scores (B, K), tags (B,) the argmax, probabilities (B, K) the softmax,
features (B, 2H) the pooled vector.

A classifier with Naive Bayes scores (``nb_ngrams``) reads one more input after the others,
``ngrams`` (B, F) int64: each sentence's distinct n-gram ids, 0-padded, from the ``ngrams``
vocabulary of the JSON (``data.textclass.ngrams``; ``ngram_order`` n); the counts are in the graph.

A tagger or classifier that reads biLM vectors is refused (ValueError): its biLM runs outside the
network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from birnn.data.characters import WORD_SHAPES, shape_rules
from birnn.nn.chars import scatter_words
from birnn.nn.exportable import WordChars, crf_marginals, packed_rnn, viterbi_decode
from birnn.tasks.log_count_ratios import sentence_scores
from birnn.tasks.tagger import Tagger

FORMAT = "birnn-onnx"
FORMAT_VERSION = 2
OUTPUTS = ("scores", "tags", "probabilities", "features")
EXAMPLE = [["Export", "this", "sentence", "."], ["Hi"], ["A", "b"]]  # mixed lengths for the trace


class OnnxGraph(NamedTuple):
    """module(*inputs.values()) -> one tensor per name in ``outputs``; ``axes``: the dynamic axes of
    every input and output by name; ``config``: the JSON written next to the ONNX file; ``chars``:
    the character graph whose char_vectors the main graph reads (None without characters)."""

    module: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: tuple[str, ...]
    axes: dict[str, dict[int, str]]
    config: dict[str, Any]
    chars: OnnxGraph | None = None


CHAR_GRAPH = {"inputs": ["chars", "char_lengths"], "outputs": ["char_vectors"]}


def _char_encoder(encoder: nn.Module | None) -> dict[str, Any]:
    """The JSON's ``char_encoder`` entry: the character graph's names and vector size D."""
    return {} if encoder is None else {"char_encoder": CHAR_GRAPH | {"size": encoder.output_size}}


def word_level_inputs(encoder: nn.Module | None, batch: Any, fields: Sequence[str]
                      ) -> tuple[dict[str, torch.Tensor], OnnxGraph | None]:
    """The example inputs of a main graph by name (batch field ``inputs`` -> ``words``), and for a
    character ``encoder`` the character graph, whose char_vectors (B, T, D) follow ``lengths``."""
    example = {("words" if name == "inputs" else name): getattr(batch, name) for name in fields}
    if encoder is None:
        return example, None
    mask = batch.char_lengths > 0  # (B, T) the real words
    words = {"chars": batch.chars[mask], "char_lengths": batch.char_lengths[mask]}  # (N, C), (N,)
    module = WordChars(encoder).eval()
    with torch.no_grad():
        vectors = module(*words.values())  # (N, D)
    char_vectors = scatter_words(vectors, mask)  # (B, T, D)
    axes = {"chars": {0: "words", 1: "characters"}, "char_lengths": {0: "words"}, "char_vectors": {0: "words"}}
    graph = OnnxGraph(module, words, ("char_vectors",), axes, {})
    first, rest = dict(list(example.items())[:2]), dict(list(example.items())[2:])
    return first | {"char_vectors": char_vectors} | rest, graph


class TaggerGraph(nn.Module):
    """``TaggerGraph(tagger, excluded=())``; call ``(words, lengths, *features)`` with features the
    tagger's own, in this order: char_vectors (B, T, D) when it reads characters, shapes (B, T) when
    it reads shapes -> (scores, tags, probabilities, features) (module docstring).

    ``excluded``: tag ids never predicted (their probability is 0, the rest renormalised; a cloze
    model never fills in <pad>, <unk> or <mask>); not allowed with a CRF.
    """

    keep: torch.Tensor

    def __init__(self, tagger: Tagger, excluded: Sequence[int] = ()) -> None:
        super().__init__()
        self.tagger = tagger
        self.encoder = packed_rnn(tagger.encoder.rnn)
        if excluded and tagger.crf is not None:
            raise ValueError("excluded tags cannot be combined with a CRF")
        keep = torch.ones(tagger.output.out_features, dtype=torch.bool)
        keep[list(excluded)] = False
        self.register_buffer("keep", keep)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, *features: torch.Tensor):
        tagger = self.tagger
        parts = [tagger.embedding(words)]  # (B, T, E)
        if tagger.chars is not None:
            parts.append(features[0])  # (B, T, D) char_vectors
        if tagger.shapes is not None:
            parts.append(tagger.shapes(features[-1]))  # (B, T, S)
        h, _ = self.encoder(torch.cat(parts, dim=-1), lengths)  # (B, T, 2H), zero at padding
        valid = (torch.arange(words.shape[1], device=words.device)[None, :] < lengths[:, None])[..., None]
        scores = torch.where(valid, tagger.output(h), torch.zeros_like(h[..., :1]))  # (B, T, K)
        if tagger.crf is not None:
            transitions, start, end = tagger.crf.constrained(scores.dtype)
            tags = viterbi_decode(scores, lengths, transitions, start, end)
            probabilities = crf_marginals(scores, lengths, transitions, start, end)
        else:
            masked = scores.masked_fill(~self.keep, float("-inf"))
            probabilities = torch.softmax(masked, dim=-1) * valid
            tags = masked.argmax(-1) * valid[..., 0]
        return scores, tags, probabilities, h


def tagger_graph(network: Tagger, batch: Any, inputs: Sequence[str], config: dict[str, Any],
                 excluded: Sequence[int] = ()) -> OnnxGraph:
    """The ``OnnxGraph`` of a tagger network: ``batch`` is an example batch, ``inputs`` names the
    batch fields the network reads besides characters (``inputs`` -> ``words``), ``config`` is the
    task's JSON."""
    example, chars = word_level_inputs(network.chars, batch, inputs)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "time"} for name in example}
    axes["lengths"] = {0: "batch"}
    axes |= {name: {0: "batch", 1: "time"} for name in OUTPUTS}
    names = {"inputs": list(example), "outputs": list(OUTPUTS)} | _char_encoder(network.chars)
    return OnnxGraph(TaggerGraph(network, excluded).eval(), example, OUTPUTS, axes,
                     {"format": FORMAT, "version": FORMAT_VERSION, **names, **config}, chars)


def _refuse_bilm(network: nn.Module, what: str) -> None:
    """A network that reads biLM vectors has no graph: the biLM's character strings and token
    boundaries are computed by the task, outside the network (``tasks.bilm.batch_context``)."""
    if getattr(network, "bilm", None) is not None:
        raise ValueError(f"a {what} that reads biLM vectors cannot be exported: its biLM runs outside the network")


def tagging_graph(task: Any) -> OnnxGraph:
    """A ``TaggingTask``'s graph; its JSON holds what featurises a sentence and names the tags."""
    network = task.network
    _refuse_bilm(network, "tagger")
    inputs = ["inputs", "lengths"]
    inputs += ["shapes"] if network.shapes is not None else []
    config = {
        "kind": task.kind, "words": task.words.itos, "lowercase": task.config.lowercase,
        "chars": task.chars.itos, "max_word_length": task._char_batcher.max_word_length,
        "shapes": {"names": list(WORD_SHAPES), "rules": shape_rules()},
        "tags": task.tags.itos, "labels": task.labels, "scheme": task.scheme, "network_scheme": task.config.scheme,
        "label_index": [task.labels.index(task._external_label(tag)) for tag in task.tags.itos],
    }
    batch = task.collate([task.encode_input(tokens) for tokens in EXAMPLE])
    return tagger_graph(network, batch, inputs, config)


def cloze_graph(task: Any) -> OnnxGraph:
    """A ``ClozeTask``'s graph: ``tags`` and ``probabilities`` fill each position (never <pad>, <unk>
    or <mask>); the input is lower-cased characters or words, blanks read as ``mask``."""
    from birnn.data import collate
    from birnn.tasks.cloze import BLANK

    vocab = task.vocab.itos
    config = {"kind": task.kind, "unit": task.config.unit, "words": vocab, "lowercase": True,
              "mask": vocab[task.mask_id], "blank": BLANK[task.config.unit], "tags": vocab, "labels": vocab,
              "label_index": list(range(len(vocab)))}
    ids = [task.vocab.encode([t.lower() for t in tokens]) for tokens in EXAMPLE]
    batch = collate([(row, [0] * len(row)) for row in ids])
    return tagger_graph(task.model, batch, ["inputs", "lengths"], config, excluded=(0, 1, task.mask_id))


class ClassifierGraph(nn.Module):
    """``ClassifierGraph(classifier)``; call ``(words, lengths[, char_vectors][, ngrams])`` ->
    (scores (B, K), tags (B,), probabilities (B, K), features (B, 2H)) (module docstring)."""

    def __init__(self, classifier: Any) -> None:
        super().__init__()
        self.classifier = classifier
        self.encoder = packed_rnn(classifier.encoder.rnn)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, *features: torch.Tensor):
        classifier = self.classifier
        parts = [classifier.embedding(words)]  # (B, T, E)
        if classifier.chars is not None:
            parts.append(features[0])  # (B, T, D) char_vectors
        h, _ = self.encoder(torch.cat(parts, dim=-1), lengths)  # (B, T, 2H)
        pooled = classifier.pool(h, lengths)  # (B, 2H)
        scores = classifier.output(pooled)  # (B, K)
        if classifier.nb_alpha is not None:  # + γ ⊙ s(x) from the n-gram ids (B, F)
            scores = scores + classifier.nb_scale * sentence_scores(classifier.ngram_counts, features[-1],
                                                                    classifier.nb_alpha)
        probabilities = torch.softmax(scores, dim=-1)
        return scores, probabilities.argmax(-1), probabilities, pooled


def classifier_graph(task: Any) -> OnnxGraph:
    """A ``ClassificationTask``'s graph; raw text is cut by ``tokenizer`` before the lookup."""
    network = task.network
    _refuse_bilm(network, "classifier")
    config = {"kind": task.kind, "level": "sentence", "words": task.words.itos, "lowercase": task.config.lowercase,
              "chars": task.chars.itos, "max_word_length": task._char_batcher.max_word_length,
              "tokenizer": task.config.tokenizer, "tags": task.labels, "labels": task.labels,
              "label_index": list(range(len(task.labels)))}
    batch = task.collate([task.encode_input(tokens) for tokens in EXAMPLE])
    fields = ["inputs", "lengths"] + (["ngrams"] if task.ngrams is not None else [])
    example, chars = word_level_inputs(network.chars, batch, fields)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "time"} for name in example}
    if task.ngrams is not None:
        config |= {"ngrams": task.ngrams.itos, "ngram_order": task.config.nb_ngrams}
        axes["ngrams"] = {0: "batch", 1: "ngrams"}
    axes["lengths"] = {0: "batch"}
    axes |= {name: {0: "batch"} for name in OUTPUTS}
    names = {"inputs": list(example), "outputs": list(OUTPUTS)} | _char_encoder(network.chars)
    return OnnxGraph(ClassifierGraph(network).eval(), example, OUTPUTS, axes,
                     {"format": FORMAT, "version": FORMAT_VERSION, **names, **config}, chars)


GRAPHS: dict[str, Callable[[Any], OnnxGraph]] = {"tagging": tagging_graph, "cloze": cloze_graph,
                                                 "classify": classifier_graph}


def onnx_graph(task: Any) -> OnnxGraph:
    """The exportable graph of a trained task; ValueError for a kind that has none."""
    kind = getattr(task, "kind", type(task).__name__)
    if hasattr(task, "members"):
        raise ValueError(f"an ensemble of {len(task.members)} models cannot be exported to ONNX; export a member")
    if kind not in GRAPHS:
        raise ValueError(f"a {kind} model cannot be exported to ONNX; exportable kinds: {sorted(GRAPHS)}")
    return GRAPHS[kind](task)
