"""``CharVectorCache`` against encoding every token: the same (B, T, D) vectors, each distinct word
encoded once, chunks of one word length (no padding run through the encoder), bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from birnn.data import Vocab
from birnn.data.characters import CharBatcher
from birnn.serve.char_cache import CharVectorCache

SIZE = 3


def _encoder(calls):
    """A deterministic stand-in for the character graph: the (sum, count, last id) of each word's
    characters; it records every chunk it is given and refuses padded columns."""

    def encode(chars, lengths):
        assert (lengths == chars.shape[1]).all(), "a chunk mixed word lengths"
        calls.append(lengths.copy())
        return np.stack([chars.sum(1), lengths, chars[:, -1]], axis=1).astype(np.float32)

    return encode


def _batcher():
    return CharBatcher(Vocab(list("abcdefghijklmnopqrstuvwxyz")), max_word_length=6)


def _every_token(batcher, sentences, width):
    chars, lengths = batcher.arrays(sentences, width)
    out = np.zeros((*lengths.shape, SIZE), dtype=np.float32)
    real = lengths > 0
    out[real] = np.stack([chars.sum(2)[real], lengths[real], chars[real, np.maximum(lengths[real], 1) - 1]], axis=1)
    return out


def test_vectors_equal_encoding_every_token_and_each_word_is_encoded_once():
    calls = []
    cache = CharVectorCache(_encoder(calls), _batcher(), SIZE, chunk=2)
    first = [["ab", "b", "ab", "abcdefghij"], ["c"]]
    second = [["b", "zz", "c"], ["abcdefgh", "ab", "q", "zz"]]  # 'abcdefgh' cut to the same 6 characters
    for sentences, width in ((first, 5), (second, 4)):
        np.testing.assert_array_equal(cache(sentences, width), _every_token(_batcher(), sentences, width))
    encoded = np.concatenate(calls)
    assert len(encoded) == 7  # ab b abcdef c | zz abcdefgh q: each distinct string once
    assert max(len(chunk) for chunk in calls) <= 2


def test_the_cache_empties_past_its_limit_and_stays_exact():
    calls = []
    cache = CharVectorCache(_encoder(calls), _batcher(), SIZE, limit=3)
    words = ["a", "b", "c", "d", "e", "f"]
    for word in words:
        cache([[word, "a"]])
        assert cache.batcher.size <= 1 + 3 + 1  # row 0, at most `limit` words, then the next batch's
    np.testing.assert_array_equal(cache([["f", "a"]]), _every_token(_batcher(), [["f", "a"]], None))
    cache.clear()
    assert cache.batcher.size == 1


def test_a_wrong_encoder_or_setting_is_named():
    with pytest.raises(ValueError, match="limit must be an integer >= 1"):
        CharVectorCache(_encoder([]), _batcher(), SIZE, limit=0)
    cache = CharVectorCache(lambda chars, lengths: np.zeros((len(lengths), 2), np.float32), _batcher(), SIZE)
    with pytest.raises(ValueError, match=r"returned shape \(1, 2\); expected \(1, 3\)"):
        cache([["a"]])


def test_threads_sharing_one_cache_get_what_encoding_every_token_gives():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefgh"), int(rng.integers(1, 9)))) for _ in range(400)]
    batches = [[list(rng.choice(words, int(rng.integers(1, 12)))) for _ in range(6)] for _ in range(60)]
    cache = CharVectorCache(_encoder([]), _batcher(), SIZE, limit=150, chunk=16)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(cache, batches))
    for sentences, got in zip(batches, results, strict=True):
        np.testing.assert_array_equal(got, _every_token(_batcher(), sentences, None))
