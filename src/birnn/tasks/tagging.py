"""Sequence tagging (POS, chunking, NER): what the trainer runs and what a trained tagger predicts.

The network is ``tagger.Tagger``. Tag strings live here and in the data layer only.
Model selection follows the tags: span F1 (seqeval, strict, as conlleval) for BIO/BIOES
tag sets, token accuracy otherwise (``monitor``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from birnn.data import Vocab, pad
from birnn.data.characters import CharBatcher, char_vocab, singleton_word_dropout, word_shape_ids
from birnn.data.tagschemes import allowed_transitions, bio_to_bioes, bioes_to_bio, detect_scheme
from birnn.nn.crf import CRF
from birnn.spec import padding_mask
from birnn.tasks.bilm import BiLMEmbedder, batch_context, with_vectors
from birnn.tasks.encoders import seeded
from birnn.tasks.tagger import Tagger, TaggerConfig

Sentence = tuple[list[str], list[str]]
# word ids, tag ids, tokens as written (and, with a biLM, their vectors (n, D))
Example = tuple[list[int], list[int], list[str]] | tuple[list[int], list[int], list[str], torch.Tensor]


class TaggingBatch(NamedTuple):
    """inputs, targets: (B, T) int64 (0 at padding); lengths: (B,); chars (B, T, C), char_lengths (B, T),
    shapes (B, T): the character and shape features of the same tokens; context (B, T, D): their
    biLM vectors (None without a biLM)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    chars: torch.Tensor
    char_lengths: torch.Tensor
    shapes: torch.Tensor
    context: torch.Tensor | None = None

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())


class TaggingTask:
    """``TaggingTask.for_data(config, sentences, bilm=None)``; ``encode(sentences)`` -> examples for the trainer.

    With a biLM (``config.bilm`` names its run; ``bilm`` is its embedder, loaded by the caller) every
    example carries its tokens' biLM vectors, computed once when it is encoded (``bilm.with_vectors``).
    """

    kind = "tagging"

    def __init__(self, config: TaggerConfig, words: Vocab, chars: Vocab, tags: Vocab, singletons: list[int],
                 scheme: str | None, bilm: BiLMEmbedder | None = None) -> None:
        if (config.bilm is None) != (bilm is None):
            raise ValueError(f"config.bilm={config.bilm!r} needs the biLM's embedder, and only then one")
        self.config, self.words, self.chars, self.tags = config, words, chars, tags
        self.scheme = scheme  # of the data as read; the network may use config.scheme internally
        self.singletons = singletons
        self._singleton_mask = torch.zeros(len(words), dtype=torch.bool)
        self._singleton_mask[torch.tensor(singletons, dtype=torch.int64)] = True
        self._char_batcher = CharBatcher(chars)
        internal = config.scheme or scheme
        allowed = allowed_transitions(tags.itos, internal) if config.crf and internal else None
        self.model = seeded(
            config.seed, lambda: Tagger(config, len(words), len(chars), len(tags), allowed, bilm), config
        )

    @property
    def network(self) -> Tagger:
        """The tagger itself, also while the trainer runs it inside DistributedDataParallel."""
        return getattr(self.model, "module", self.model)

    @property
    def monitor(self) -> str:
        """The dev metric that picks the best checkpoint."""
        return "f1" if self.scheme else "accuracy"

    @classmethod
    def for_data(cls, config: TaggerConfig, sentences: list[Sentence], bilm: BiLMEmbedder | None = None
                 ) -> TaggingTask:
        scheme = detect_scheme(tag for _, tags in sentences for tag in tags)
        if config.scheme and not scheme:
            raise ValueError(f"scheme={config.scheme!r} needs BIO/BIOES tags; these tags are not chunk tags")
        lookup = [cls._lookup_form(config, tokens) for tokens, _ in sentences]
        words = Vocab.build(lookup)
        counts: dict[str, int] = {}
        for tokens in lookup:
            for token in tokens:
                counts[token] = counts.get(token, 0) + 1
        singletons = sorted(words.stoi[w] for w, n in counts.items() if n == 1)
        internal = [cls._to_internal(config, tags) for _, tags in sentences]
        tags = Vocab.build(internal, specials=False)
        return cls(config, words, char_vocab(tokens for tokens, _ in sentences), tags, singletons, scheme, bilm)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": asdict(self.config), "words": self.words.to_dict(),
                "chars": self.chars.to_dict(), "tags": self.tags.to_dict(), "singletons": self.singletons,
                "scheme": self.scheme} | ({"bilm": self.network.bilm.describe()} if self.network.bilm else {})

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> TaggingTask:
        """The biLM is rebuilt from its description; its weights are in the tagger's checkpoint."""
        bilm = BiLMEmbedder.from_description(d["bilm"]) if "bilm" in d else None
        return cls(TaggerConfig(**d["config"]), Vocab.from_dict(d["words"]), Vocab.from_dict(d["chars"]),
                   Vocab.from_dict(d["tags"]), list(d["singletons"]), d["scheme"], bilm)

    # ----- data ----------------------------------------------------------------------------------
    @staticmethod
    def _lookup_form(config: TaggerConfig, tokens: Sequence[str]) -> list[str]:
        return [t.lower() for t in tokens] if config.lowercase else list(tokens)

    @staticmethod
    def _to_internal(config: TaggerConfig, tags: Sequence[str]) -> list[str]:
        return bio_to_bioes(tags) if config.scheme == "bioes" else list(tags)

    def _to_external(self, tags: list[str]) -> list[str]:
        return bioes_to_bio(tags) if self.config.scheme == "bioes" and self.scheme == "bio" else tags

    def encode(self, sentences: list[Sentence], source: str = "data") -> list[Example]:
        """Token and tag strings -> examples; tags unseen in training are an error naming ``source``."""
        internal = [self._to_internal(self.config, tags) for _, tags in sentences]
        unknown = sorted({tag for tags in internal for tag in tags if tag not in self.tags})
        if unknown:
            raise ValueError(f"{source}: tags not seen in training: {', '.join(unknown[:10])}")
        examples = [(self.encode_input(tokens)[0], self.tags.encode(tags), list(tokens))
                    for (tokens, _), tags in zip(sentences, internal, strict=True)]
        return with_vectors(self.network.bilm, examples)

    def encode_input(self, tokens: Sequence[str]) -> Example:
        """An example to predict: word ids, placeholder tags, the tokens."""
        return self.words.encode(self._lookup_form(self.config, tokens)), [0] * len(tokens), list(tokens)

    def collate(self, examples: Sequence[Example]) -> TaggingBatch:
        inputs, lengths = pad([e[0] for e in examples])
        targets, _ = pad([e[1] for e in examples])
        tokens = [e[2] for e in examples]
        chars = self._char_batcher(tokens)
        shapes, _ = pad([word_shape_ids(t) for t in tokens])
        context = batch_context(self.network.bilm, examples)
        return TaggingBatch(inputs, targets, lengths, chars.chars, chars.char_lengths, shapes, context)

    # ----- training and evaluation ---------------------------------------------------------------
    def _emissions(self, batch: TaggingBatch, words: torch.Tensor | None = None) -> torch.Tensor:
        words = batch.inputs if words is None else words
        return self.model(words, batch.lengths, batch.chars, batch.char_lengths, batch.shapes, batch.context)

    def loss(self, batch: TaggingBatch) -> torch.Tensor:
        words = batch.inputs
        if self.config.word_dropout and self.network.training:
            words = singleton_word_dropout(words, self._singleton_mask, 1, self.config.word_dropout, None)
        emissions = self._emissions(batch, words)
        if self.network.crf is not None:
            return self.network.crf.nll(emissions, batch.targets, batch.lengths, reduction="token_mean")
        valid = padding_mask(batch.lengths, batch.inputs.shape[1])
        return nn.functional.cross_entropy(emissions[valid], batch.targets[valid])

    def evaluate_batch(self, batch: TaggingBatch) -> list[tuple[list[int], list[int], list[bool]]]:
        """(predicted, gold, unknown-word flags) of every sentence in the batch."""
        rows = zip(self.predict_ids(batch), batch.targets, batch.inputs, batch.lengths.tolist(), strict=True)
        return [(p, gold[:n].tolist(), (words[:n] == 1).tolist()) for p, gold, words, n in rows]

    def metrics(self, outcomes: list[list[tuple[list[int], list[int], list[bool]]]]) -> dict[str, float]:
        """accuracy, accuracy on known and unknown words; for chunk tags seqeval's strict span
        precision/recall/F1 (micro) and per chunk type ``f1_TYPE``, ``precision_TYPE``,
        ``recall_TYPE`` and ``support_TYPE`` (gold spans)."""
        triples = [t for batch in outcomes for t in batch]
        hits = np.concatenate([np.equal(p, g) for p, g, _ in triples]) if triples else np.zeros(0, bool)
        unknown = np.concatenate([np.asarray(u, bool) for _, _, u in triples]) if triples else np.zeros(0, bool)
        result = {"accuracy": float(hits.mean()) if hits.size else 0.0}
        if self.scheme is None:
            result["accuracy_known"] = float(hits[~unknown].mean()) if (~unknown).any() else float("nan")
            result["accuracy_unknown"] = float(hits[unknown].mean()) if unknown.any() else float("nan")
            return result
        from seqeval.metrics import classification_report
        from seqeval.scheme import IOB2

        predicted = [bioes_to_bio(self.tags.decode(p)) for p, _, _ in triples]
        gold = [bioes_to_bio(self.tags.decode(g)) for _, g, _ in triples]
        report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
        result |= {"precision": report["micro avg"]["precision"], "recall": report["micro avg"]["recall"],
                   "f1": report["micro avg"]["f1-score"]}
        for kind, scores in report.items():
            if " avg" not in kind:
                result |= {f"f1_{kind}": scores["f1-score"], f"precision_{kind}": scores["precision"],
                           f"recall_{kind}": scores["recall"], f"support_{kind}": scores["support"]}
        return {k: float(v) for k, v in result.items()}

    # ----- prediction ----------------------------------------------------------------------------
    def _scores(self, batch: TaggingBatch) -> tuple[torch.Tensor, CRF | None]:
        """What decoding reads: the emission scores (B, T, K) and the CRF that scores transitions
        (None: a softmax tagger, one independent choice per token)."""
        return self._emissions(batch), self.network.crf

    @staticmethod
    def _best_ids(emissions: torch.Tensor, lengths: torch.Tensor, crf: CRF | None) -> list[list[int]]:
        """Viterbi under a CRF, argmax per token otherwise; one list per sentence."""
        if crf is not None:
            best, _ = crf.decode(emissions, lengths)
        else:
            best = emissions.argmax(-1)
        return [row[:n].tolist() for row, n in zip(best, lengths.tolist(), strict=True)]

    @staticmethod
    def _marginals(emissions: torch.Tensor, lengths: torch.Tensor, crf: CRF | None) -> torch.Tensor:
        """p(y_t = k | sentence) over the internal tags: CRF marginals by forward–backward, or the
        softmax. (B, T, K) -> (B, T, K), 0 at padding."""
        if crf is not None:
            return crf.marginals(emissions, lengths)
        return torch.softmax(emissions, dim=-1) * padding_mask(lengths, emissions.shape[1])[..., None]

    @property
    def labels(self) -> list[str]:
        """The tag names in the scheme of the training data: the columns of ``predict_proba``."""
        return list(dict.fromkeys(self._external_label(tag) for tag in self.tags.itos))

    def _external_label(self, tag: str) -> str:
        """Token-wise BIOES -> BIO (S-X -> B-X, E-X -> I-X) when the network learns BIOES for BIO data."""
        if self.config.scheme == "bioes" and self.scheme == "bio" and tag[:2] in ("S-", "E-"):
            return ("B-" if tag[0] == "S" else "I-") + tag[2:]
        return tag

    def _to_labels(self, p: torch.Tensor) -> torch.Tensor:
        """(..., K internal tags) -> (..., len(labels)): the probabilities of tags that map to one label add up."""
        labels = self.labels
        if len(labels) == len(self.tags):
            return p
        merge = torch.zeros(len(self.tags), len(labels), dtype=p.dtype, device=p.device)
        for k, tag in enumerate(self.tags.itos):
            merge[k, labels.index(self._external_label(tag))] = 1
        return p @ merge

    def predict_ids(self, batch: TaggingBatch) -> list[list[int]]:
        """Best internal tag ids per sentence."""
        emissions, crf = self._scores(batch)
        return self._best_ids(emissions, batch.lengths, crf)

    def predict(self, batch: TaggingBatch) -> list[list[str]]:
        """The tag strings of every sentence, in the scheme of the training data."""
        return [self._to_external(self.tags.decode(ids)) for ids in self.predict_ids(batch)]

    def probabilities(self, batch: TaggingBatch) -> torch.Tensor:
        """p(y_t = label | sentence) -> (B, T, len(labels)), 0 at padding."""
        emissions, crf = self._scores(batch)
        return self._to_labels(self._marginals(emissions, batch.lengths, crf))

    def predict_proba(self, batch: TaggingBatch) -> list[np.ndarray]:
        """Per sentence a (length, len(labels)) array of tag probabilities, columns in ``labels`` order."""
        p = self.probabilities(batch)
        return [row[:n].detach().cpu().numpy() for row, n in zip(p, batch.lengths.tolist(), strict=True)]

    def predict_with_proba(self, batch: TaggingBatch) -> list[tuple[list[str], np.ndarray]]:
        """``predict`` and ``predict_proba`` from one pass of the network."""
        emissions, crf = self._scores(batch)
        p = self._to_labels(self._marginals(emissions, batch.lengths, crf))
        tags = [self._to_external(self.tags.decode(ids)) for ids in self._best_ids(emissions, batch.lengths, crf)]
        return [(t, row[:len(t)].detach().cpu().numpy()) for t, row in zip(tags, p, strict=True)]

    def embed(self, batch: TaggingBatch) -> list[np.ndarray]:
        """Per sentence a (length, 2H) array: the encoder's contextual features of each token."""
        h = self.network.features(batch.inputs, batch.lengths, batch.chars, batch.char_lengths, batch.shapes,
                                  batch.context)
        return [row[:n].cpu().numpy() for row, n in zip(h, batch.lengths.tolist(), strict=True)]
