"""Sentence classification: one label per sequence from a pooled (Bi)RNN encoding.

    r_t = [ e(w_t) ; c(chars of w_t) ; b_t ]            word ⊕ optional character and biLM features (as the tagger)
    h   = Encoder(dropout(r))                           (B, T, 2H)
    v   = pool(h, lengths)                              (B, 2H)  summary | mean | max | attention | last
    p(y | x) = softmax(W dropout(v) + b [+ γ ⊙ s(x)]),   loss = mean_b -log p(y_b | x_b)

``pool`` is one of ``birnn.nn.pooling.POOLS``: ``summary`` = [→h after the last token ; ←h after
the first], the two final states; ``last`` = h at the batch's last column, which on a padded
batch reads padding and whose backward half has seen one token (kept to show the mistake).
With a biLM, b_t is its frozen contextual vector of the token (``tasks.bilm``), computed by the
task as for the tagger and handed to the network as ``context``.
With ``nb_ngrams`` = n, s(x) (K,) is the sentence's binarised Naive Bayes log-odds over its 1- to
n-grams (``tasks.log_count_ratios``; Wang & Manning 2012), from training counts the network keeps,
and γ (K,) is learned: the BiRNN and Naive Bayes as one product of experts, trained together.
Training sentences read their s(x) leave-one-out, so γ learns how far to trust it on unseen text;
it starts at the γ that best calibrates those leave-one-out scores alone.
Label strings live here and in the data layer only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from birnn.data import Vocab, pad
from birnn.data.characters import CharBatcher, char_vocab, singleton_word_dropout
from birnn.data.textclass import TOKENIZERS, ngrams, tokenize
from birnn.nn.chars import CharBiLSTM, CharCNN
from birnn.nn.pooling import POOLS, Pool
from birnn.tasks.bilm import BiLMEmbedder, batch_context, with_vectors
from birnn.tasks.encoders import Encoder, check_model, is_bidirectional, seeded
from birnn.tasks.log_count_ratios import calibrated_scale, sentence_counts, sentence_scores

CHAR_ENCODERS = ("lstm", "cnn", "none")
# word ids, label id, tokens as written (and, with a biLM, their vectors (n, D))
Example = tuple[list[int], int, list[str]] | tuple[list[int], int, list[str], torch.Tensor]
# tokens, label (and, optionally, their biLM vectors (n, D), computed once for several tasks)
LabelledTokens = tuple[Sequence[str], str] | tuple[Sequence[str], str, torch.Tensor]


@dataclass(frozen=True)
class ClassifierConfig:
    """model: one of ``encoders.MODELS``; hidden: units per direction (a one-directional model gets 2×);
    pool: how the steps become one vector (``nn.pooling.POOLS``); embedding: word vector size,
    initialised U(-init, init), for the words seen at least ``min_count`` times (others are <unk>);
    chars: "lstm" | "cnn" | "none", ``char_hidden`` units per direction (the CNN gets 2·char_hidden
    filters); dropout: on the token vectors, between layers and on the pooled vector; word_dropout:
    probability that a training singleton is read as <unk>; lowercase: words looked up lower-cased;
    tokenizer: how raw text is split at prediction time ("whitespace" | "regex", as in training);
    bilm: the run directory of a biLM whose frozen token vectors join the representation;
    nb_ngrams: n > 0 adds the Naive Bayes log-odds of the sentence's 1- to n-grams, smoothed by
    ``nb_alpha``, to the scores (0: off)."""

    model: str = "bilstm"
    pool: str = "max"
    embedding: int = 300
    init: float = 0.25
    min_count: int = 1
    hidden: int = 128
    layers: int = 1
    dropout: float = 0.5
    chars: str = "none"
    char_embedding: int = 30
    char_hidden: int = 50
    word_dropout: float = 0.0
    lowercase: bool = False
    tokenizer: str = "whitespace"
    bilm: str | None = None
    nb_ngrams: int = 0
    nb_alpha: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_model(self.model)
        for name in ("embedding", "min_count", "hidden", "layers", "char_embedding", "char_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("dropout", "word_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in [0, 1); got {getattr(self, name)}")
        for name in ("init", "nb_alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)}")
        if self.nb_ngrams < 0:
            raise ValueError(f"nb_ngrams must be >= 0 (0: off); got {self.nb_ngrams}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}; got {self.pool!r}")
        if self.chars not in CHAR_ENCODERS:
            raise ValueError(f"chars must be one of {CHAR_ENCODERS}; got {self.chars!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}; got {self.tokenizer!r}")


class Classifier(nn.Module):
    """``classifier(words (B, T), lengths (B,), chars (B, T, C) = None, char_lengths (B, T) = None,
    context (B, T, D) = None, ngrams (B, F) = None, own_labels (B,) = None) -> logits (B, K)``.

    ``bilm``: the frozen embedder whose vectors ``context`` holds; kept here so that its weights
    are saved with the classifier's. With ``n_ngrams`` (config.nb_ngrams > 0) the buffer
    ``ngram_counts`` (n_ngrams, K) holds the training counts (``log_count_ratios.sentence_counts``),
    saved with the weights, and ``ngrams`` are each sentence's distinct n-gram ids, 0-padded;
    ``own_labels``: the sentences were counted, with these labels (leave-one-out scores)."""

    ngram_counts: torch.Tensor  # a buffer, with nb_ngrams only

    def __init__(self, config: ClassifierConfig, n_words: int, n_chars: int, n_labels: int,
                 bilm: BiLMEmbedder | None = None, n_ngrams: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_words, config.embedding, padding_idx=0)
        with torch.no_grad():
            nn.init.uniform_(self.embedding.weight, -config.init, config.init)
            self.embedding.weight[0] = 0
        width = config.embedding
        self.chars: nn.Module | None = None
        if config.chars == "lstm":
            self.chars = CharBiLSTM(n_chars, config.char_embedding, config.char_hidden)
        elif config.chars == "cnn":
            self.chars = CharCNN(n_chars, config.char_embedding, 2 * config.char_hidden)
        width += 2 * config.char_hidden if self.chars is not None else 0
        self.bilm = bilm
        width += bilm.dim if bilm is not None else 0
        self.input_dropout, self.output_dropout = nn.Dropout(config.dropout), nn.Dropout(config.dropout)
        between = config.dropout if config.layers > 1 else 0.0  # torch warns about dropout after a last layer
        self.encoder = Encoder(config.model, width, config.hidden, config.layers, between)
        size = self.encoder.output_size
        self.pool = Pool(config.pool, size, config.hidden if is_bidirectional(config.model) else size)
        self.output = nn.Linear(size, n_labels)
        self.nb_alpha = config.nb_alpha if config.nb_ngrams else None
        if config.nb_ngrams:
            self.register_buffer("ngram_counts", torch.zeros(n_ngrams, n_labels))
            self.nb_scale = nn.Parameter(torch.ones(n_labels))  # γ, calibrated by ClassificationTask.for_data

    def forward(self, words, lengths, chars=None, char_lengths=None, context=None, ngrams=None,
                own_labels=None) -> torch.Tensor:
        scores = self.output(self.output_dropout(self.encode(words, lengths, chars, char_lengths, context)))
        if self.nb_alpha is None:
            return scores
        if ngrams is None:
            raise ValueError("this classifier adds Naive Bayes scores: pass the sentences' ngrams (B, F)")
        return scores + self.nb_scale * sentence_scores(self.ngram_counts, ngrams, self.nb_alpha, own_labels)

    def encode(self, words, lengths, chars=None, char_lengths=None, context=None) -> torch.Tensor:
        """The pooled sequence vector v: (B, 2H)."""
        return self.pool(self.features(words, lengths, chars, char_lengths, context), lengths)

    def features(self, words, lengths, chars=None, char_lengths=None, context=None) -> torch.Tensor:
        """The encoder's output h before pooling: (B, T, 2H), zero at padding."""
        parts = [self.embedding(words)]  # (B, T, E)
        if self.chars is not None:
            parts.append(self.chars(chars, char_lengths))  # (B, T, 2·Hc)
        if self.bilm is not None:
            if context is None:
                raise ValueError("this classifier reads biLM vectors: pass context (B, T, D)")
            parts.append(context)  # (B, T, D)
        h, _ = self.encoder(self.input_dropout(torch.cat(parts, dim=-1)), lengths)  # (B, T, 2H)
        return h


class ClassificationBatch(NamedTuple):
    """inputs: (B, T) int64 (0 at padding); targets: (B,) label ids; lengths: (B,);
    chars (B, T, C), char_lengths (B, T): the characters of the same tokens; context (B, T, D):
    their biLM vectors (None without a biLM); ngrams (B, F): each sentence's distinct n-gram ids,
    0-padded (None without Naive Bayes scores)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    chars: torch.Tensor
    char_lengths: torch.Tensor
    context: torch.Tensor | None = None
    ngrams: torch.Tensor | None = None

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())


class ClassificationTask:
    """``ClassificationTask.for_data(config, examples, bilm=None)`` with (tokens, label) pairs;
    ``encode(examples)`` -> what the trainer batches.

    With a biLM (``config.bilm`` names its run; ``bilm`` is its embedder, loaded by the caller) every
    example carries its tokens' biLM vectors, computed once when it is encoded (``bilm.with_vectors``).
    With ``config.nb_ngrams``, ``ngrams`` is the vocabulary of the training n-grams (as looked up).
    """

    kind = "classify"
    monitor = "accuracy"

    def __init__(self, config: ClassifierConfig, words: Vocab, chars: Vocab, labels: Vocab,
                 singletons: list[int], bilm: BiLMEmbedder | None = None, ngrams: Vocab | None = None) -> None:
        if (config.bilm is None) != (bilm is None):
            raise ValueError(f"config.bilm={config.bilm!r} needs the biLM's embedder, and only then one")
        if (config.nb_ngrams == 0) != (ngrams is None):
            raise ValueError(f"config.nb_ngrams={config.nb_ngrams} needs an n-gram vocabulary, and only then one")
        self.ngrams = ngrams
        self.config, self.words, self.chars, self.classes = config, words, chars, labels
        self.singletons = singletons
        self._singleton_mask = torch.zeros(len(words), dtype=torch.bool)
        self._singleton_mask[torch.tensor(singletons, dtype=torch.int64)] = True
        self._char_batcher = CharBatcher(chars)
        self.model = seeded(
            config.seed,
            lambda: Classifier(config, len(words), len(chars), len(labels), bilm, len(ngrams) if ngrams else 0),
            config,
        )

    @property
    def labels(self) -> list[str]:
        """The label names, sorted: the columns of ``predict_proba``."""
        return list(self.classes.itos)

    @property
    def network(self) -> Classifier:
        """The classifier itself, also while the trainer runs it inside DistributedDataParallel."""
        return getattr(self.model, "module", self.model)

    @classmethod
    def for_data(cls, config: ClassifierConfig, examples: Sequence[LabelledTokens],
                 bilm: BiLMEmbedder | None = None) -> ClassificationTask:
        """Vocabularies of the training examples; labels sorted, so their ids do not depend on file order."""
        words, singletons = cls.word_vocabulary(config, [e[0] for e in examples])
        labels = Vocab(sorted({e[1] for e in examples}), specials=False)
        if len(labels) < 2:
            raise ValueError(f"classification needs at least two labels; got {labels.itos}")
        features = [cls._ngrams_of(config, e[0]) for e in examples] if config.nb_ngrams else []
        ngram_vocab = Vocab(sorted({f for sentence in features for f in sentence})) if config.nb_ngrams else None
        task = cls(config, words, char_vocab(e[0] for e in examples), labels, singletons, bilm, ngram_vocab)
        if ngram_vocab is not None:
            task._count(features, torch.tensor([labels.stoi[e[1]] for e in examples]))
        return task

    def _count(self, features: Sequence[Sequence[str]], targets: torch.Tensor) -> None:
        """The Naive Bayes counts of the training sentences' n-grams, and γ calibrated on their
        leave-one-out scores."""
        assert self.ngrams is not None, "only a task with nb_ngrams counts n-grams"
        ids = [self.ngrams.encode(f) for f in features]
        counts = sentence_counts(ids, targets.tolist(), len(self.ngrams), len(self.classes))
        network = self.network
        with torch.no_grad():
            network.ngram_counts.copy_(torch.from_numpy(counts))
            own = sentence_scores(network.ngram_counts, pad(ids)[0], self.config.nb_alpha, targets)
            network.nb_scale.fill_(calibrated_scale(own, targets))

    @classmethod
    def word_vocabulary(cls, config: ClassifierConfig, sentences: Sequence[Sequence[str]]) -> tuple[Vocab, list[int]]:
        """The words seen at least ``config.min_count`` times (as looked up), and the ids of those seen once."""
        lookup = [cls._lookup_form(config, tokens) for tokens in sentences]
        words = Vocab.build(lookup, min_freq=config.min_count)
        counts: dict[str, int] = {}
        for tokens in lookup:
            for token in tokens:
                counts[token] = counts.get(token, 0) + 1
        return words, sorted(words.stoi[w] for w, n in counts.items() if n == 1 and w in words)

    def describe(self) -> dict[str, Any]:
        bilm = self.network.bilm
        return {"kind": self.kind, "config": asdict(self.config), "words": self.words.to_dict(),
                "chars": self.chars.to_dict(), "labels": self.classes.to_dict(),
                "singletons": self.singletons} | ({"bilm": bilm.describe()} if bilm is not None else {}) | (
                {"ngrams": self.ngrams.to_dict()} if self.ngrams is not None else {})

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> ClassificationTask:
        """The biLM is rebuilt from its description; its weights, and the n-gram counts, are in the
        classifier's checkpoint."""
        bilm = BiLMEmbedder.from_description(d["bilm"]) if "bilm" in d else None
        ngram_vocab = Vocab.from_dict(d["ngrams"]) if "ngrams" in d else None
        return cls(ClassifierConfig(**d["config"]), Vocab.from_dict(d["words"]), Vocab.from_dict(d["chars"]),
                   Vocab.from_dict(d["labels"]), list(d["singletons"]), bilm, ngram_vocab)

    # ----- data ----------------------------------------------------------------------------------
    @staticmethod
    def _lookup_form(config: ClassifierConfig, tokens: Sequence[str]) -> list[str]:
        return [t.lower() for t in tokens] if config.lowercase else list(tokens)

    @classmethod
    def _ngrams_of(cls, config: ClassifierConfig, tokens: Sequence[str]) -> list[str]:
        return ngrams(cls._lookup_form(config, tokens), config.nb_ngrams)

    def tokenize(self, text: str) -> list[str]:
        """Raw text -> tokens, split as the training files were."""
        return tokenize(text, self.config.tokenizer)

    def encode(self, examples: Sequence[LabelledTokens], source: str = "data") -> list[Example]:
        """(tokens, label) pairs -> examples; a label unseen in training is an error naming ``source``.
        With a biLM, a pair may bring its tokens' vectors (n, D) as a third item (computed once for
        every fold of a cross-validation); the others' are computed here."""
        unknown = sorted({e[1] for e in examples if e[1] not in self.classes})
        if unknown:
            raise ValueError(f"{source}: labels not seen in training: {', '.join(unknown[:10])} "
                             f"(known: {', '.join(self.classes.itos)})")
        if self.network.bilm is None:
            return [(self.encode_input(e[0])[0], self.classes.stoi[e[1]], list(e[0])) for e in examples]
        encoded = [(self.encode_input(e[0])[0], self.classes.stoi[e[1]], list(e[0]), *e[2:]) for e in examples]
        return with_vectors(self.network.bilm, encoded)

    def encode_input(self, tokens: Sequence[str]) -> Example:
        """An example to predict: word ids, a placeholder label, the tokens."""
        return self.words.encode(self._lookup_form(self.config, tokens)), 0, list(tokens)

    def collate(self, examples: Sequence[Example]) -> ClassificationBatch:
        inputs, lengths = pad([e[0] for e in examples])
        targets = torch.tensor([e[1] for e in examples], dtype=torch.int64)
        chars = self._char_batcher([e[2] for e in examples])
        context = batch_context(self.network.bilm, examples)
        return ClassificationBatch(inputs, targets, lengths, chars.chars, chars.char_lengths, context,
                                   self._ngram_ids(examples))

    def _ngram_ids(self, examples: Sequence[Example]) -> torch.Tensor | None:
        """Each sentence's distinct n-gram ids (B, F), 0-padded; unseen n-grams are <unk> (no score)."""
        if self.ngrams is None:
            return None
        return pad([self.ngrams.encode(self._ngrams_of(self.config, e[2])) for e in examples])[0]

    # ----- training and evaluation ---------------------------------------------------------------
    def _logits(self, batch: ClassificationBatch, words: torch.Tensor | None = None,
                own_labels: torch.Tensor | None = None) -> torch.Tensor:
        words = batch.inputs if words is None else words
        return self.model(words, batch.lengths, batch.chars, batch.char_lengths, batch.context, batch.ngrams,
                          own_labels)  # (B, K)

    def loss(self, batch: ClassificationBatch) -> torch.Tensor:
        """Mean NLL; in training mode singletons may be read as <unk> and the Naive Bayes scores are
        leave-one-out (the batch comes from the training data that was counted)."""
        words, training = batch.inputs, self.network.training
        if self.config.word_dropout and training:
            words = singleton_word_dropout(words, self._singleton_mask, 1, self.config.word_dropout, None)
        own = batch.targets if training and self.ngrams is not None else None
        return nn.functional.cross_entropy(self._logits(batch, words, own), batch.targets)

    def evaluate_batch(self, batch: ClassificationBatch) -> tuple[list[int], list[int]]:
        """(predicted, gold) label ids of the batch's sentences."""
        return self._logits(batch).argmax(-1).tolist(), batch.targets.tolist()

    def confusion(self, outcomes: list[tuple[list[int], list[int]]]) -> np.ndarray:
        """(K, K) int64 counts: row = gold label, column = predicted, in ``labels`` order."""
        predicted = np.asarray([p for batch in outcomes for p in batch[0]], dtype=np.int64)
        gold = np.asarray([g for batch in outcomes for g in batch[1]], dtype=np.int64)
        k = len(self.classes)
        return np.bincount(gold * k + predicted, minlength=k * k).reshape(k, k)

    def metrics(self, outcomes: list[tuple[list[int], list[int]]]) -> dict[str, float]:
        """accuracy, macro-F1 (the unweighted mean of the per-label F1) and ``f1_LABEL`` per label."""
        scores = confusion_scores(self.confusion(outcomes))
        return {"accuracy": scores["accuracy"], "macro_f1": float(scores["f1"].mean())} | {
            f"f1_{label}": float(f) for label, f in zip(self.classes.itos, scores["f1"], strict=True)}

    # ----- prediction ----------------------------------------------------------------------------
    def probabilities(self, batch: ClassificationBatch) -> torch.Tensor:
        """p(y = k | sentence) -> (B, K), columns in ``labels`` order."""
        return torch.softmax(self._logits(batch), dim=-1)

    def predict(self, batch: ClassificationBatch) -> list[str]:
        """The most probable label of each sentence."""
        return self.classes.decode(self._logits(batch).argmax(-1).tolist())

    def predict_proba(self, batch: ClassificationBatch) -> list[np.ndarray]:
        """Per sentence a (K,) array of label probabilities, in ``labels`` order."""
        return list(self.probabilities(batch).cpu().numpy())

    def predict_with_proba(self, batch: ClassificationBatch) -> list[tuple[str, np.ndarray]]:
        """``predict`` and ``predict_proba`` from one pass of the network."""
        p = self.probabilities(batch)
        return list(zip(self.classes.decode(p.argmax(-1).tolist()), p.cpu().numpy(), strict=True))

    def embed(self, batch: ClassificationBatch) -> list[np.ndarray]:
        """Per sentence its pooled (2H,) vector."""
        v = self.network.encode(batch.inputs, batch.lengths, batch.chars, batch.char_lengths, batch.context)
        return list(v.cpu().numpy())


def confusion_scores(confusion: np.ndarray) -> dict[str, Any]:
    """From a (K, K) confusion matrix C (rows gold, columns predicted):

        accuracy = Σ_k C_kk / Σ C,   precision_k = C_kk / Σ_g C_gk,   recall_k = C_kk / Σ_p C_kp,
        F1_k = 2 C_kk / (Σ_g C_gk + Σ_p C_kp)       (0 where a label is neither predicted nor gold)

    -> {"accuracy": float, "precision": (K,), "recall": (K,), "f1": (K,)}."""
    hits = np.diag(confusion).astype(np.float64)
    predicted, gold = confusion.sum(0), confusion.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(gold > 0, hits / gold, 0.0)
        f1 = np.where(predicted + gold > 0, 2 * hits / (predicted + gold), 0.0)
    total = confusion.sum()
    return {"accuracy": float(hits.sum() / total) if total else 0.0, "precision": precision, "recall": recall,
            "f1": f1}
