"""Chunk tag schemes (BIO, BIOES): detection, conversion, validity and CRF transition masks.

Tag strings live here (STYLE §13); ``birnn.nn.CRF`` only ever sees the boolean
masks that ``allowed_transitions`` returns.

A chunk tag is ``O`` (outside) or ``P-TYPE`` with a prefix P and a chunk type
(the type may itself contain ``-``, e.g. ``B-creative-work``):

- BIO (IOB2): ``B`` begins a chunk, ``I`` continues it. IOB1 (``I`` begins a
  chunk unless it follows one of the same type, ``B`` only separates adjacent
  chunks of one type) uses the same prefixes and is read the same way.
- BIOES: ``B`` begin, ``I`` inside, ``E`` end, ``S`` single-token chunk.
  BILOU is accepted as a synonym: ``L`` is read as ``E`` and ``U`` as ``S``.

Reading chunks (lenient, as conlleval reads BIO): position t+1 continues the
chunk at t exactly when

    prefix_t ∈ {B, I}  and  prefix_{t+1} ∈ {I, E}  and  type_t = type_{t+1};

chunks are the maximal runs of non-``O`` tags linked this way. So an ``I-X``
after ``O`` (or after a chunk of another type) begins a new chunk, and the
conversions repair such tags: ``bioes_to_bio`` of an IOB1 sequence is IOB2.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import numpy as np

__all__ = [
    "SCHEMES",
    "allowed_transitions",
    "bio_to_bioes",
    "bioes_to_bio",
    "chunks",
    "detect_scheme",
    "is_valid",
]

SCHEMES = ("bio", "bioes")
_PREFIXES = {"bio": frozenset("BI"), "bioes": frozenset("BIES")}
_SYNONYMS = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}  # BILOU -> BIOES
_OUTSIDE = ("O", "")  # (prefix, type) of the tag "O"


def _parse(tag: str) -> tuple[str, str] | None:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); 'L-X' -> ('E', 'X'); anything else -> None."""
    if tag == "O":
        return _OUTSIDE
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind or prefix not in _SYNONYMS:
        return None
    return _SYNONYMS[prefix], kind


def _parse_all(tags: Iterable[str], scheme: str | None = None) -> list[tuple[str, str]]:
    """Parse every tag, or raise naming the first that is not a chunk tag (of ``scheme``, if given)."""
    allowed = _PREFIXES[scheme] if scheme is not None else frozenset("BIES")
    parsed = []
    for position, tag in enumerate(tags):
        item = _parse(tag)
        if item is None or (item != _OUTSIDE and item[0] not in allowed):
            expected = f"a {scheme.upper()} tag" if scheme else "a chunk tag"
            raise ValueError(f"tags[{position}] = {tag!r} is not {expected} ('O' or 'P-TYPE')")
        parsed.append(item)
    return parsed


def _check_scheme(scheme: str | None, allow_none: bool) -> None:
    choices = (*SCHEMES, None) if allow_none else SCHEMES
    if scheme not in choices:
        raise ValueError(f"scheme must be one of {choices}; got {scheme!r}")


def detect_scheme(tags: Iterable[str]) -> str | None:
    """The scheme of a tag set (or of a tag sequence): "bio", "bioes" or None.

    None means the tags are not chunk tags (POS-like sets such as ``NOUN``,
    ``-LRB-``) or are all ``O``: there is nothing to constrain. "bioes" when
    any tag has an ``E``/``S`` (or BILOU ``L``/``U``) prefix, else "bio".
    An IOB1 tag set is reported as "bio"; its sequences may start chunks with
    ``I``, which BIO constraints forbid, so convert them first (``bioes_to_bio``).
    """
    prefixes = set()
    for tag in set(tags):
        parsed = _parse(tag)
        if parsed is None:
            return None
        prefixes.add(parsed[0])
    prefixes.discard("O")
    if not prefixes:
        return None
    return "bioes" if prefixes & {"E", "S"} else "bio"


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks of a BIO/IOB1/BIOES/BILOU tag sequence as (type, start, end) with end exclusive.

    Read leniently (module docstring): ``["I-X", "I-X", "O", "B-Y", "E-Y"]``
    -> ``[("X", 0, 2), ("Y", 3, 5)]``.
    """
    parsed = _parse_all(tags)
    found: list[tuple[str, int, int]] = []
    for t, (prefix, kind) in enumerate(parsed):
        if prefix == "O":
            continue
        if t > 0 and parsed[t - 1][0] in "BI" and prefix in "IE" and parsed[t - 1][1] == kind:
            found[-1] = (kind, found[-1][1], t + 1)
        else:
            found.append((kind, t, t + 1))
    return found


def _write(length: int, spans: list[tuple[str, int, int]], scheme: str) -> list[str]:
    out = ["O"] * length
    for kind, start, end in spans:
        if scheme == "bioes" and end - start == 1:
            out[start] = f"S-{kind}"
            continue
        out[start] = f"B-{kind}"
        for t in range(start + 1, end):
            out[t] = f"I-{kind}"
        if scheme == "bioes":
            out[end - 1] = f"E-{kind}"
    return out


def bio_to_bioes(tags: Sequence[str]) -> list[str]:
    """BIO (IOB2 or IOB1) -> BIOES, chunk by chunk: a one-token chunk becomes ``S-X``,
    a longer one ``B-X I-X … E-X``. ``I-X`` after ``O`` or another type begins a chunk (as ``B-X``)."""
    return _write(len(tags), chunks(tags), "bioes")


def bioes_to_bio(tags: Sequence[str]) -> list[str]:
    """BIOES (or BILOU, or IOB1) -> BIO (IOB2): ``S-X`` -> ``B-X``, ``E-X`` -> ``I-X``, and
    every chunk begins with ``B-X``. ``bioes_to_bio(bio_to_bioes(y)) == y`` for valid BIO ``y``."""
    return _write(len(tags), chunks(tags), "bio")


def _pair_allowed(prev: tuple[str, str], tag: tuple[str, str], scheme: str) -> bool:
    """May ``tag`` follow ``prev`` under ``scheme``? Both parsed as (prefix, type)."""
    prefix, kind = tag
    if scheme == "bio":
        # I-X only continues a chunk of type X; B-X and O may follow anything.
        return prefix != "I" or (prev[0] in "BI" and prev[1] == kind)
    # BIOES: I-X/E-X continue an open chunk of type X; B-X/S-X/O need no open chunk.
    if prefix in "IE":
        return prev[0] in "BI" and prev[1] == kind
    return prev[0] in "OES"


def _start_allowed(tag: tuple[str, str], scheme: str) -> bool:
    return tag[0] not in ("I" if scheme == "bio" else "IE")


def _end_allowed(tag: tuple[str, str], scheme: str) -> bool:
    return scheme == "bio" or tag[0] not in "BI"


def is_valid(tags: Sequence[str], scheme: str | None) -> bool:
    """Is ``tags`` a well-formed sequence under ``scheme`` (the rules of ``allowed_transitions``)?

    scheme None accepts every sequence. A tag that does not belong to the
    scheme (``E-X`` under "bio", ``NOUN`` under either) makes the sequence invalid.
    """
    _check_scheme(scheme, allow_none=True)
    if scheme is None:
        return True
    try:
        parsed = _parse_all(tags, scheme)
    except ValueError:
        return False
    if not parsed:
        return True
    return (
        _start_allowed(parsed[0], scheme)
        and _end_allowed(parsed[-1], scheme)
        and all(_pair_allowed(a, b, scheme) for a, b in pairwise(parsed))
    )


def allowed_transitions(tag_list: Sequence[str], scheme: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks of what a decoder may do, for ``birnn.nn.CRF(len(tag_list), allowed=...)``.

    tag_list: the K tags in id order -> start_allowed (K,), trans_allowed (K, K)
    [row = previous tag, column = next tag], end_allowed (K,), all numpy bool.

    - "bio": never start on ``I-X``; ``I-X`` only after ``B-X`` or ``I-X``.
    - "bioes": never start on ``I-X``/``E-X``, never end on ``B-X``/``I-X``;
      ``I-X``/``E-X`` only after ``B-X``/``I-X``; ``B-*``, ``S-*``, ``O`` only
      after ``O``, ``E-*`` or ``S-*``.
    - None: everything allowed (POS-like tag sets).

    A tag that does not belong to the scheme raises ``ValueError`` naming it.
    """
    _check_scheme(scheme, allow_none=True)
    k = len(tag_list)
    if scheme is None:
        return np.ones(k, dtype=bool), np.ones((k, k), dtype=bool), np.ones(k, dtype=bool)
    parsed = _parse_all(tag_list, scheme)
    start = np.array([_start_allowed(tag, scheme) for tag in parsed], dtype=bool).reshape(k)
    end = np.array([_end_allowed(tag, scheme) for tag in parsed], dtype=bool).reshape(k)
    trans = np.array([[_pair_allowed(a, b, scheme) for b in parsed] for a in parsed], dtype=bool).reshape(k, k)
    return start, trans, end
