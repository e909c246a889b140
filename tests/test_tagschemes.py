"""birnn.data.tagschemes: detection, conversions, validity and the CRF masks, by value."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from birnn.data.tagschemes import (
    allowed_transitions,
    bio_to_bioes,
    bioes_to_bio,
    chunks,
    detect_scheme,
    is_valid,
)
from conftest import SHARED_DATA

T, F = True, False


def test_detect_scheme():
    assert detect_scheme(["O", "B-person", "I-person", "B-creative-work"]) == "bio"
    assert detect_scheme(["O", "I-X"]) == "bio"  # IOB1
    assert detect_scheme(["O", "B-X", "I-X", "E-X", "S-X"]) == "bioes"
    assert detect_scheme(["O", "B-X", "I-X", "L-X", "U-X"]) == "bioes"  # BILOU
    assert detect_scheme(["NOUN", "VERB", "-LRB-", "O"]) is None
    assert detect_scheme(["O"]) is None
    assert detect_scheme(["O", "B-"]) is None  # no chunk type


def test_chunks_read_leniently():
    assert chunks(["I-X", "I-X", "O", "B-Y", "E-Y"]) == [("X", 0, 2), ("Y", 3, 5)]
    assert chunks(["B-X", "I-Y", "I-Y", "B-Y"]) == [("X", 0, 1), ("Y", 1, 3), ("Y", 3, 4)]
    assert chunks(["S-X", "E-X", "U-X"]) == [("X", 0, 1), ("X", 1, 2), ("X", 2, 3)]
    assert chunks([]) == []
    with pytest.raises(ValueError, match=r"tags\[1\] = 'NOUN'"):
        chunks(["O", "NOUN"])


def test_bio_to_bioes_by_hand():
    bio = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG", "B-ORG", "B-creative-work"]
    bioes = ["B-PER", "E-PER", "O", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG", "S-ORG", "S-creative-work"]
    assert bio_to_bioes(bio) == bioes
    assert bioes_to_bio(bioes) == bio
    assert bio_to_bioes(["O", "O"]) == ["O", "O"]


def test_invalid_i_is_read_as_b_like_conlleval():
    # IOB1 / broken IOB2: I-X after O (or after another type) begins a chunk.
    assert bio_to_bioes(["I-X", "I-X", "O", "I-X", "B-X", "I-Y"]) == ["B-X", "E-X", "O", "S-X", "S-X", "S-Y"]
    assert bioes_to_bio(["I-X", "I-X", "O", "I-X", "B-X", "I-Y"]) == ["B-X", "I-X", "O", "B-X", "B-X", "B-Y"]
    assert bioes_to_bio(["O", "E-X", "I-X"]) == ["O", "B-X", "B-X"]


def test_bilou_is_read_as_bioes():
    assert bioes_to_bio(["U-X", "B-Y", "I-Y", "L-Y"]) == ["B-X", "B-Y", "I-Y", "I-Y"]
    assert bio_to_bioes(["U-X", "B-Y", "L-Y"]) == ["S-X", "B-Y", "E-Y"]


@st.composite
def valid_bio(draw):
    """A well-formed IOB2 sequence: chunks of random types and lengths between runs of O."""
    tags = []
    for _ in range(draw(st.integers(0, 5))):
        tags += ["O"] * draw(st.integers(0, 2))
        kind = draw(st.sampled_from(["X", "Y", "a-b"]))
        tags += [f"B-{kind}"] + [f"I-{kind}"] * draw(st.integers(0, 3))
    return tags + ["O"] * draw(st.integers(0, 2))


@given(valid_bio())
def test_round_trip(bio):
    assert is_valid(bio, "bio")
    bioes = bio_to_bioes(bio)
    assert is_valid(bioes, "bioes")
    assert bioes_to_bio(bioes) == bio
    assert bio_to_bioes(bioes) == bioes
    assert chunks(bioes) == chunks(bio)


@given(st.lists(st.sampled_from(["O", "B-X", "I-X", "B-Y", "I-Y"]), max_size=8))
def test_repair_gives_valid_sequences_with_the_same_chunks(tags):
    assert is_valid(bioes_to_bio(tags), "bio")
    assert is_valid(bio_to_bioes(tags), "bioes")
    assert chunks(bioes_to_bio(tags)) == chunks(tags)


def test_allowed_transitions_bio_by_value():
    tags = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    start, trans, end = allowed_transitions(tags, "bio")
    assert start.dtype == trans.dtype == end.dtype == np.bool_
    np.testing.assert_array_equal(start, [T, T, F, T, F])
    np.testing.assert_array_equal(end, [T, T, T, T, T])
    np.testing.assert_array_equal(
        trans,
        [
            #  O  B-X I-X B-Y I-Y      (next)
            [T, T, F, T, F],  # O
            [T, T, T, T, F],  # B-X
            [T, T, T, T, F],  # I-X
            [T, T, F, T, T],  # B-Y
            [T, T, F, T, T],  # I-Y
        ],
    )


def test_allowed_transitions_bioes_by_value():
    tags = ["O", "B-X", "I-X", "E-X", "S-X", "B-Y", "E-Y"]
    start, trans, end = allowed_transitions(tags, "bioes")
    np.testing.assert_array_equal(start, [T, T, F, F, T, T, F])
    np.testing.assert_array_equal(end, [T, F, F, T, T, F, T])
    np.testing.assert_array_equal(
        trans,
        [
            #  O  B-X I-X E-X S-X B-Y E-Y   (next)
            [T, T, F, F, T, T, F],  # O
            [F, F, T, T, F, F, F],  # B-X
            [F, F, T, T, F, F, F],  # I-X
            [T, T, F, F, T, T, F],  # E-X
            [T, T, F, F, T, T, F],  # S-X
            [F, F, F, F, F, F, T],  # B-Y
            [T, T, F, F, T, T, F],  # E-Y
        ],
    )


def test_allowed_transitions_without_a_scheme_and_errors():
    start, trans, end = allowed_transitions(["NOUN", "VERB", "ADJ"], None)
    assert start.all() and trans.all() and end.all() and trans.shape == (3, 3)
    with pytest.raises(ValueError, match=r"tags\[1\] = 'E-X' is not a BIO tag"):
        allowed_transitions(["O", "E-X"], "bio")
    with pytest.raises(ValueError, match="scheme must be one of"):
        allowed_transitions(["O"], "iob3")


def test_is_valid_by_hand():
    assert is_valid(["B-X", "I-X", "O", "B-Y"], "bio")
    assert not is_valid(["I-X"], "bio")
    assert not is_valid(["O", "I-X"], "bio")
    assert not is_valid(["B-X", "I-Y"], "bio")
    assert is_valid(["B-X"], "bio") and is_valid([], "bio")
    assert is_valid(["S-X", "B-Y", "I-Y", "E-Y", "O"], "bioes")
    assert not is_valid(["B-X"], "bioes")  # never ends on B
    assert not is_valid(["B-X", "O"], "bioes")  # B must be closed by E
    assert not is_valid(["E-X"], "bioes")
    assert not is_valid(["B-X", "E-Y"], "bioes")
    assert not is_valid(["O", "E-X"], "bio")  # not a BIO tag
    assert is_valid(["NOUN", "I-X"], None)


@pytest.mark.parametrize(
    "scheme,tag_list", [("bio", ["O", "B-X", "I-X", "B-Y", "I-Y"]), ("bioes", ["O", "B-X", "I-X", "E-X", "S-X", "B-Y"])]
)
@given(data=st.data())
def test_is_valid_agrees_with_the_masks(scheme, tag_list, data):
    ids = data.draw(st.lists(st.integers(0, len(tag_list) - 1), max_size=6))
    start, trans, end = allowed_transitions(tag_list, scheme)
    by_masks = not ids or (start[ids[0]] and end[ids[-1]] and all(trans[a, b] for a, b in pairwise(ids)))
    assert is_valid([tag_list[i] for i in ids], scheme) == by_masks


@pytest.mark.skipif(not (SHARED_DATA / "wnut17").exists(), reason="shared data not present")
def test_wnut17_is_valid_bio_and_round_trips():
    from birnn.data import read_columns

    sentences = read_columns(SHARED_DATA / "wnut17" / "wnut17train.conll")
    tag_set = sorted({tag for _, tags in sentences for tag in tags})
    assert detect_scheme(tag_set) == "bio"
    for _, tags in sentences:
        assert is_valid(tags, "bio")
        assert bioes_to_bio(bio_to_bioes(tags)) == tags
