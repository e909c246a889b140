"""Token-level inputs beside word ids: character batches, word shapes and singleton word dropout.

- ``char_vocab(sentences, min_freq=1)``: a ``Vocab`` of characters (0 = <pad>, 1 = <unk>);
- ``CharBatcher(vocab, max_word_length=30)``: sentences of token strings ->
  ``CharBatch(chars (B, T, C), char_lengths (B, T))``, built with NumPy from a per-word cache;
- ``word_shape(token)`` / ``word_shape_ids(tokens)``: one of ``WORD_SHAPES`` per token, for an
  ``nn.Embedding(len(WORD_SHAPES), ..., padding_idx=0)``;
- ``singleton_mask(sentences, vocab)`` and ``singleton_word_dropout(ids, mask, unk_id, p, generator)``:
  Lample et al. (2016)'s <unk> training.

Everything but the torch tensors is NumPy: torch is imported by the functions that return
tensors, so ONNX inference (``CharBatcher.arrays``, ``word_shape``) runs without it.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from birnn.data.vocab import UNK, Vocab

if TYPE_CHECKING:
    import torch


def char_vocab(sentences: Iterable[Sequence[str]], min_freq: int = 1) -> Vocab:
    """Characters of every token seen at least ``min_freq`` times, most frequent first.

    Ids 0 and 1 are <pad> and <unk>, so 0 in a character batch always means padding.
    """
    return Vocab.build((token for sentence in sentences for token in sentence), min_freq=min_freq)


class CharBatch(NamedTuple):
    """chars: (B, T, C) int64, 0 = padding; char_lengths: (B, T) int64, 0 at padding words, >= 1 at words."""

    chars: torch.Tensor
    char_lengths: torch.Tensor


class CharBatcher:
    """Sentences of token strings -> padded character ids, with a word -> ids cache.

    A word is cut to its first ``max_word_length`` characters (its suffix is lost;
    in UD EWT train 157 of 204,577 tokens exceed 30 characters, nearly all URLs and
    e-mail addresses). The only per-character Python work is mapping a word the
    first time it is seen; afterwards a batch costs one dict lookup per token and
    NumPy gathers. The cache grows with the number of distinct words seen;
    ``clear_cache()`` empties it (e.g. between corpora when streaming). Threads sharing
    one batcher (a service sharing one predictor) take turns on a lock.
    """

    def __init__(self, vocab: Vocab, max_word_length: int = 30) -> None:
        if not vocab.specials:
            raise ValueError("vocab must have specials: id 0 is character padding and id 1 <unk>")
        if not isinstance(max_word_length, int) or max_word_length < 1:
            raise ValueError(f"max_word_length must be a positive integer; got {max_word_length!r}")
        self.vocab, self.max_word_length = vocab, max_word_length
        self._lock = threading.RLock()
        self.clear_cache()

    def clear_cache(self) -> None:
        """Forget every cached word. Row 0 of the table is the padding word (no characters)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._rows: dict[str, int] = {}
        self._table = np.zeros((1024, self.max_word_length), dtype=np.int64)  # (W, Cmax) char ids
        self._lengths = np.zeros(1024, dtype=np.int64)  # (W,)
        self._size = 1

    def _add(self, word: str) -> int:
        if not word:
            raise ValueError("tokens must be non-empty strings; got ''")
        if self._size == len(self._lengths):
            self._table = np.concatenate([self._table, np.zeros_like(self._table)])
            self._lengths = np.concatenate([self._lengths, np.zeros_like(self._lengths)])
        ids = self.vocab.encode(word[: self.max_word_length])
        row = self._size
        self._table[row, : len(ids)] = ids
        self._lengths[row] = len(ids)
        self._rows[word] = row
        self._size += 1
        return row

    @property
    def size(self) -> int:
        """Rows of the cache, the padding row 0 included: every row ``rows`` returns is below it."""
        return self._size

    def words(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """rows: (N,) cache rows (from ``rows``) -> (chars (N, C), char_lengths (N,)) int64, C = the
        longest of these words (at least 1)."""
        with self._lock:
            lengths = self._lengths[rows]  # (N,)
            return self._table[rows, : max(int(lengths.max(initial=0)), 1)], lengths

    def rows(self, sentences: Sequence[Sequence[str]], width: int | None = None) -> np.ndarray:
        """(B, T) int64 cache rows of each token, 0 at padding words. T = ``width`` or the longest sentence."""
        if len(sentences) == 0:
            raise ValueError("sentences must hold at least one sentence; got none")
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        if int(lengths.min()) < 1:
            raise ValueError(f"every sentence must hold at least one token; sentence {int(lengths.argmin())} is empty")
        steps = int(lengths.max()) if width is None else width
        if steps < int(lengths.max()):
            raise ValueError(f"width must be >= the longest sentence ({int(lengths.max())} tokens); got {width}")
        with self._lock:
            index, add = self._rows, self._add
            flat = np.fromiter(
                (index.get(token) or add(token) for sentence in sentences for token in sentence),
                dtype=np.int64,
                count=int(lengths.sum()),
            )
        rows = np.zeros((len(sentences), steps), dtype=np.int64)
        rows[np.arange(steps)[None, :] < lengths[:, None]] = flat  # row-major order = token order
        return rows

    def arrays(self, sentences: Sequence[Sequence[str]], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """sentences: B lists of token strings -> (chars (B, T, C), char_lengths (B, T)) int64 NumPy arrays.

        T = ``width`` (e.g. the word batch's padded length) or the longest sentence;
        C = the longest (truncated) word in the batch. Sentence order is kept, so a
        length-sorted word batch and its character batch line up.
        """
        with self._lock:
            rows = self.rows(sentences, width)
            char_lengths = self._lengths[rows]  # (B, T)
            return self._table[rows, : max(int(char_lengths.max()), 1)], char_lengths  # (B, T, C), (B, T)

    def __call__(self, sentences: Sequence[Sequence[str]], width: int | None = None) -> CharBatch:
        """``arrays`` as a CharBatch of torch tensors."""
        import torch

        chars, char_lengths = self.arrays(sentences, width)
        return CharBatch(torch.from_numpy(chars), torch.from_numpy(char_lengths))


# Word shapes: the first matching rule wins, in this order. 0 is padding.
WORD_SHAPES = (
    "<pad>",
    "url",  # http://…, www.…, a domain such as foo.com/…, or an e-mail address
    "mention",  # @user
    "hashtag",  # #topic
    "digits",  # only digits: 1999
    "has_digit",  # a digit among other characters: 3.5, 10:30, 2nd, A4
    "punct",  # no letter and no digit: . , -- :) !!!
    "hyphen",  # letters and a hyphen: well-known, E-mail
    "caps",  # two or more cased letters, all upper case: USA, U.S., I'M
    "title",  # first cased letter upper, the others lower: John, I, Don't
    "lower",  # every cased letter lower: the, don't, e.g.
    "mixed",  # other mixes of case: iPhone, McDonald, eBay
    "uncased",  # letters without case (e.g. CJK)
)
SHAPE_IDS = {name: i for i, name in enumerate(WORD_SHAPES)}
_URL = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://|www\.)|^[^@\s]+@[^@\s]+\.[a-z]{2,}$|^[\w.-]+\.(?:com|org|net|edu|gov|io|co|uk|ly)(?:/|$)",
    re.IGNORECASE,
)
_MENTION = re.compile(r"^@\w+$")
_HASHTAG = re.compile(r"^#\w+$")
_DIGITS = re.compile(r"^[0-9]+$")
_HAS_DIGIT = re.compile(r"[0-9]")


@lru_cache(maxsize=1 << 16)
def word_shape(token: str) -> int:
    """The id in ``WORD_SHAPES`` of one token's shape (rules tried in the tuple's order)."""
    if not token:
        raise ValueError("token must be a non-empty string; got ''")
    if _URL.search(token):
        return SHAPE_IDS["url"]
    if _MENTION.match(token):
        return SHAPE_IDS["mention"]
    if _HASHTAG.match(token):
        return SHAPE_IDS["hashtag"]
    if _DIGITS.match(token):
        return SHAPE_IDS["digits"]
    if _HAS_DIGIT.search(token):
        return SHAPE_IDS["has_digit"]
    if not any(ch.isalnum() for ch in token):
        return SHAPE_IDS["punct"]
    if "-" in token:
        return SHAPE_IDS["hyphen"]
    cased = [ch for ch in token if ch.lower() != ch.upper()]
    if not cased:
        return SHAPE_IDS["uncased"]
    if len(cased) >= 2 and all(ch.isupper() for ch in cased):
        return SHAPE_IDS["caps"]
    if cased[0].isupper() and all(ch.islower() for ch in cased[1:]):
        return SHAPE_IDS["title"]
    if all(ch.islower() for ch in cased):
        return SHAPE_IDS["lower"]
    return SHAPE_IDS["mixed"]


def shape_rules() -> list[dict[str, str]]:
    """``word_shape``'s rules in the order they are tried, for users outside Python: a regular
    expression (Python ``re`` syntax, ``re.search``) or a description of the character test."""
    return [
        {"shape": "url", "regex": _URL.pattern, "flags": "IGNORECASE"},
        {"shape": "mention", "regex": _MENTION.pattern},
        {"shape": "hashtag", "regex": _HASHTAG.pattern},
        {"shape": "digits", "regex": _DIGITS.pattern},
        {"shape": "has_digit", "regex": _HAS_DIGIT.pattern},
        {"shape": "punct", "test": "no character is alphanumeric (str.isalnum)"},
        {"shape": "hyphen", "test": "contains '-'"},
        {"shape": "uncased", "test": "no cased character (ch.lower() == ch.upper() for every ch)"},
        {"shape": "caps", "test": "two or more cased characters, all upper case"},
        {"shape": "title", "test": "the first cased character upper case, the other cased ones lower"},
        {"shape": "lower", "test": "every cased character lower case"},
        {"shape": "mixed", "test": "any other token"},
    ]


def word_shape_ids(tokens: Sequence[str]) -> list[int]:
    """One ``WORD_SHAPES`` id (>= 1) per token; pad a batch of them with 0."""
    return [word_shape(token) for token in tokens]


def singleton_mask(sentences: Iterable[Sequence[str]], vocab: Vocab) -> torch.Tensor:
    """(V,) bool: True for the vocabulary words that occur exactly once in ``sentences`` (the training set).

    Padding and <unk> are never singletons.
    """
    import torch

    counts = Counter(token for sentence in sentences for token in sentence)
    mask = torch.zeros(len(vocab), dtype=torch.bool)
    ids = [vocab.stoi[word] for word, count in counts.items() if count == 1 and word in vocab]
    mask[torch.tensor(ids, dtype=torch.int64)] = True
    if vocab.specials:
        mask[vocab.stoi[UNK]] = False
        mask[0] = False
    return mask


def singleton_word_dropout(
    ids: torch.Tensor, singleton_mask: torch.Tensor, unk_id: int, p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Replace each occurrence of a training singleton by <unk> with probability ``p`` (Lample et al. 2016).

    ids: (B, T) int64; singleton_mask: (V,) bool, False at padding -> (B, T) int64, a new tensor.

        ids'_{bt} = unk_id  if singleton[ids_{bt}] and u_{bt} < p,  u_{bt} ~ U[0, 1) i.i.d.
                    ids_{bt} otherwise

    Only ``generator`` draws the u (it must live on ids' device); the same generator
    state gives the same replacements. Apply at training time only.
    """
    import torch

    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1]; got {p}")
    if singleton_mask.dtype != torch.bool or singleton_mask.dim() != 1:
        raise ValueError(
            f"singleton_mask must be a (V,) bool tensor; got {singleton_mask.dtype} {tuple(singleton_mask.shape)}"
        )
    draws = torch.rand(ids.shape, generator=generator, device=ids.device)  # (B, T)
    replace = singleton_mask.to(ids.device)[ids] & (draws < p)
    return torch.where(replace, torch.full_like(ids, unk_id), ids)
