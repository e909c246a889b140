"""Character batches, word shapes, singleton word dropout and the character encoders."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from birnn.data.characters import (
    SHAPE_IDS,
    WORD_SHAPES,
    CharBatcher,
    char_vocab,
    singleton_mask,
    singleton_word_dropout,
    word_shape_ids,
)
from birnn.data.vocab import Vocab
from birnn.nn.chars import CharBiLSTM, CharCNN

SENTENCES = [["The", "cat", "sat"], ["Hello", "supercalifragilistic", "a", "b", "!"], ["xyz"]]


def _encoders(n_chars: int) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [
        CharBiLSTM(n_chars, char_embedding=7, hidden=5).eval(),
        CharBiLSTM(n_chars, char_embedding=7, hidden=5, num_layers=2, cell="gru").eval(),
        CharCNN(n_chars, char_embedding=7, filters=6, width=3).eval(),
        CharCNN(n_chars, char_embedding=7, filters=6, width=5).eval(),
    ]


# --- the batcher -----------------------------------------------------------------------------------


def test_char_vocab_reserves_padding_and_unknown():
    vocab = char_vocab([["aab", "b"], ["ca"]])
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c"]


def test_batcher_by_value():
    vocab = Vocab(["a", "b", "c", "d"])  # a=2 b=3 c=4 d=5
    batch = CharBatcher(vocab, max_word_length=3)([["ab", "dcba", "x"], ["c"]])
    assert batch.chars.dtype == torch.int64 and batch.char_lengths.dtype == torch.int64
    assert batch.chars.tolist() == [
        [[2, 3, 0], [5, 4, 3], [1, 0, 0]],  # "dcba" cut to "dcb"; x is <unk>
        [[4, 0, 0], [0, 0, 0], [0, 0, 0]],  # padding words are all 0
    ]
    assert batch.char_lengths.tolist() == [[2, 3, 1], [1, 0, 0]]


def test_batcher_width_cache_and_errors():
    batcher = CharBatcher(Vocab(["a", "b"]), max_word_length=30)
    first = batcher([["ab"], ["b", "a"]], width=4)
    assert first.chars.shape == (2, 4, 2) and first.char_lengths.tolist() == [[2, 0, 0, 0], [1, 1, 0, 0]]
    again = batcher([["ab"], ["b", "a"]], width=4)  # served from the cache
    assert torch.equal(first.chars, again.chars)
    for _ in range(3000):  # the cache table grows past its first 1024 rows
        batcher([[f"w{len(batcher._rows)}"]])
    assert torch.equal(batcher([["ab"], ["b", "a"]], width=4).chars, first.chars)
    with pytest.raises(ValueError, match="width must be >= the longest sentence"):
        batcher([["a", "b"]], width=1)
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        batcher([["a"], []])
    with pytest.raises(ValueError, match="non-empty"):
        batcher([["a", ""]])


def test_batcher_matches_a_per_character_reference():
    sentences = SENTENCES + [["tail-word", "ünïcode", "€"]]
    vocab = char_vocab(sentences[:2])
    batch = CharBatcher(vocab, max_word_length=6)(sentences)
    for b, sentence in enumerate(sentences):
        for t in range(batch.chars.shape[1]):
            word = sentence[t][:6] if t < len(sentence) else ""
            assert batch.char_lengths[b, t] == len(word)
            expected = vocab.encode(word) + [0] * (batch.chars.shape[2] - len(word))
            assert batch.chars[b, t].tolist() == expected


def test_threads_sharing_one_batcher_get_each_words_own_characters():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefgh"), int(rng.integers(1, 7)))) + str(i) for i in range(20000)]
    batches = [[words[i : i + 50], words[i + 50 : i + 100]] for i in range(0, 20000, 100)]  # new words only
    vocab = char_vocab([words])
    batcher = CharBatcher(vocab, max_word_length=8)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between almost any two bytecodes
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(batcher.arrays, batches))
    finally:
        sys.setswitchinterval(interval)
    for sentences, (chars, lengths) in zip(batches, results, strict=True):
        for b, sentence in enumerate(sentences):
            for t, word in enumerate(sentence):
                assert chars[b, t, : lengths[b, t]].tolist() == vocab.encode(word[:8])


# --- word shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token, shape",
    [
        ("the", "lower"),
        ("don't", "lower"),
        ("John", "title"),
        ("I", "title"),
        ("USA", "caps"),
        ("U.S.", "caps"),
        ("iPhone", "mixed"),
        ("McDonald", "mixed"),
        ("1999", "digits"),
        ("3.5", "has_digit"),
        ("2nd", "has_digit"),
        (".", "punct"),
        (":)", "punct"),
        ("!!!", "punct"),
        ("well-known", "hyphen"),
        ("http://t.co/x", "url"),
        ("www.example.org", "url"),
        ("amazon.com", "url"),
        ("someone@enron.com", "url"),
        ("@user_1", "mention"),
        ("#tbt", "hashtag"),
        ("東京", "uncased"),
    ],
)
def test_word_shape(token, shape):
    assert word_shape_ids([token]) == [SHAPE_IDS[shape]]


def test_word_shapes_never_use_padding():
    assert WORD_SHAPES[0] == "<pad>" and 0 not in word_shape_ids([w for s in SENTENCES for w in s])


# --- singleton word dropout -------------------------------------------------------------------------


def _dropout_setting():
    train = [["a", "b", "a", "c"], ["c", "d"]]  # singletons: b, d
    vocab = Vocab.build(train)
    ids = torch.tensor([vocab.encode(s) + [0] * (4 - len(s)) for s in train])
    return vocab, ids, singleton_mask(train, vocab)


def test_singleton_mask():
    vocab, _, mask = _dropout_setting()
    assert [vocab.itos[i] for i in mask.nonzero().flatten().tolist()] == ["b", "d"]


def test_singleton_word_dropout_extremes_and_reproducibility():
    vocab, ids, mask = _dropout_setting()
    unk = vocab.stoi["<unk>"]
    assert torch.equal(singleton_word_dropout(ids, mask, unk, 0.0, torch.Generator().manual_seed(1)), ids)
    replaced = singleton_word_dropout(ids, mask, unk, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(replaced, torch.where(mask[ids], unk, ids))
    assert (replaced == unk).sum() == 2 and (replaced == 0).sum() == (ids == 0).sum()
    draws = [singleton_word_dropout(ids, mask, unk, 0.5, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    assert torch.equal(ids, torch.tensor(ids.tolist()))  # input untouched
    with pytest.raises(ValueError, match="p must lie in"):
        singleton_word_dropout(ids, mask, unk, 1.5, None)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_singleton_word_dropout_rate(p):
    vocab, _, mask = _dropout_setting()
    ids = torch.full((100, 100), vocab.stoi["b"])  # 10k occurrences of a singleton
    ids[:, 0] = vocab.stoi["a"]  # and a frequent word, never replaced
    out = singleton_word_dropout(ids, mask, 1, p, torch.Generator().manual_seed(0))
    assert (out[:, 0] == vocab.stoi["a"]).all()
    rate = float((out[:, 1:] == 1).float().mean())
    assert abs(rate - p) <= 0.02


# --- encoders --------------------------------------------------------------------------------------


def _reference(encoder: torch.nn.Module, word: list[int]) -> torch.Tensor:
    """One word on its own, through the submodules, without select/scatter or masking: (D,)."""
    ids = torch.tensor([word])
    x = encoder.embedding(ids)  # (1, n, E)
    if isinstance(encoder, CharBiLSTM):
        return encoder.rnn(x, torch.tensor([len(word)])).summary[0]
    return encoder.conv(x.transpose(1, 2)).amax(dim=-1)[0]  # every position is valid


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encoders_equal_a_per_word_loop(dtype):
    vocab = char_vocab(SENTENCES)
    batch = CharBatcher(vocab)(SENTENCES)
    for encoder in _encoders(len(vocab)):
        encoder.to(dtype)
        out = encoder(*batch)
        assert out.shape == (3, 5, encoder.output_size) and out.dtype == dtype
        for b, sentence in enumerate(SENTENCES):
            for t in range(5):
                if t < len(sentence):
                    expected = _reference(encoder, vocab.encode(sentence[t]))
                    torch.testing.assert_close(out[b, t], expected, atol=1e-6, rtol=1e-5)
                else:
                    assert (out[b, t] == 0).all()


@pytest.mark.parametrize("grad", [True, False])  # BiRNN picks different kernels with and without autograd
def test_encoders_are_padding_invariant(grad):
    vocab = char_vocab(SENTENCES)
    batcher = CharBatcher(vocab)
    alone = batcher([["cat"]])  # (1, 1, 3): no padding at all
    longer_words = batcher([["cat", "supercalifragilistic"]])  # more character padding around "cat"
    more_words = batcher([["The", "cat"], ["a", "b", "c", "d", "e", "f", "g"]])  # more padding words
    wide = batcher([["cat"], ["a"]], width=9)  # padded past the longest sentence
    with torch.set_grad_enabled(grad):
        for encoder in _encoders(len(vocab)):
            reference = encoder(*alone)[0, 0]
            torch.testing.assert_close(encoder(*longer_words)[0, 0], reference, atol=1e-6, rtol=0)
            torch.testing.assert_close(encoder(*more_words)[0, 1], reference, atol=1e-6, rtol=0)
            out = encoder(*wide)
            torch.testing.assert_close(out[0, 0], reference, atol=1e-6, rtol=0)
            assert (out[0, 1:] == 0).all() and (out[1, 1:] == 0).all()


def test_repeated_words_are_encoded_once_with_the_gradient_of_encoding_each():
    """Each distinct word is encoded once; values and parameter gradients equal encoding every
    occurrence (the encoder's own encode on all N words); with active dropout every occurrence
    draws its own mask."""
    from birnn.nn.chars import distinct_words, select_words

    vocab = char_vocab(SENTENCES)
    batch = CharBatcher(vocab)([["the", "cat", "the", "a"], ["a", "the", "cat"], ["xyz", "the"]])
    words, lengths, _ = select_words(*batch)
    distinct, distinct_lengths, inverse = distinct_words(words, lengths)
    assert distinct.shape[0] == 4 and torch.equal(distinct[inverse], words)
    assert torch.equal(distinct_lengths[inverse], lengths)
    for encoder in _encoders(len(vocab)):
        encoder.train()
        out = encoder(*batch)
        weights = torch.randn_like(out)
        grads = torch.autograd.grad((out * weights).sum(), list(encoder.parameters()), allow_unused=True)
        each = encoder.encode(words, lengths)  # every occurrence, no deduplication
        want = torch.autograd.grad((each * weights[batch.char_lengths > 0]).sum(), list(encoder.parameters()),
                                   allow_unused=True)
        torch.testing.assert_close(out[batch.char_lengths > 0], each, atol=1e-6, rtol=1e-5)
        for got, expected in zip(grads, want, strict=True):
            if expected is not None:
                torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    encoder = CharBiLSTM(len(vocab), dropout=0.5).train()
    out = encoder(*batch)
    assert not torch.equal(out[0, 0], out[0, 2])  # two "the": two dropout masks


def test_a_hash_collision_falls_back_to_comparing_whole_words(monkeypatch):
    """Every word hashed alike (all keys 0): the check catches it and the rows are compared whole."""
    import birnn.nn.chars as chars
    from birnn.nn.chars import distinct_words, select_words

    batch = CharBatcher(char_vocab(SENTENCES))([["the", "cat", "the", "a"], ["a", "the", "cat"]])
    words, lengths, _ = select_words(*batch)
    monkeypatch.setattr(chars, "_hash_powers", lambda width, device: torch.zeros(width, dtype=torch.int64))
    distinct, distinct_lengths, inverse = distinct_words(words, lengths)
    assert distinct.shape[0] == 3 and torch.equal(distinct[inverse], words)
    assert torch.equal(distinct_lengths[inverse], lengths)


def test_cnn_padding_never_wins_the_max():
    torch.manual_seed(0)
    encoder = CharCNN(5, char_embedding=3, filters=4).eval()
    with torch.no_grad():
        encoder.conv.bias.fill_(100.0)  # zero windows beyond the word would score 100 and win an unmasked max
        encoder.embedding.weight[0].fill_(3.0)  # even a non-zero padding row does not leak in
    chars = torch.tensor([[[2, 3, 0, 0, 0]]])
    out = encoder(chars, torch.tensor([[2]]))
    torch.testing.assert_close(out[0, 0], _reference(encoder, [2, 3]))


def test_gradients_reach_only_the_characters_used():
    vocab = Vocab(list("abcdefgh"))  # ids 2..9
    batch = CharBatcher(vocab)([["ab", "c"], ["bad"]])  # uses a, b, c, d = ids 2..5
    for encoder in _encoders(len(vocab)):
        encoder.train()
        encoder(*batch).pow(2).sum().backward()
        grad = encoder.embedding.weight.grad
        used = grad.abs().sum(dim=1) > 0
        assert used.tolist() == [False, False, True, True, True, True, False, False, False, False]
        assert encoder.embedding.padding_idx == 0


def test_dropout_keeps_padding_words_zero():
    vocab = char_vocab(SENTENCES)
    batch = CharBatcher(vocab)(SENTENCES)
    for encoder in (CharBiLSTM(len(vocab), dropout=0.5), CharCNN(len(vocab), dropout=0.5)):
        out = encoder.train()(*batch)
        assert (out[batch.char_lengths == 0] == 0).all() and (out[batch.char_lengths > 0] != 0).any()


def test_encoder_errors():
    with pytest.raises(ValueError, match="width must be odd"):
        CharCNN(10, width=4)
    with pytest.raises(ValueError, match="hidden must be a positive integer"):
        CharBiLSTM(10, hidden=0)
    with pytest.raises(ValueError, match="char_lengths must have shape"):
        CharCNN(10)(torch.zeros(2, 3, 4, dtype=torch.int64), torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="char_lengths must lie in"):
        CharCNN(10)(torch.zeros(1, 1, 2, dtype=torch.int64), torch.tensor([[3]]))
