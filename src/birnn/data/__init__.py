"""Corpora, vocabularies and batching: files and names in, padded tensors with lengths out.

The names below are imported on first use, so that the torch-free parts (vocabularies, readers,
tag schemes, character ids and word shapes) load without torch: ONNX inference needs only NumPy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from birnn.data.batching import Batch, batch_indices, collate, pad
    from birnn.data.readers import read_columns, read_conllu, read_symbol_sequences, read_tagged, read_text
    from birnn.data.registry import data_home, resolve
    from birnn.data.tagschemes import (
        allowed_transitions,
        bio_to_bioes,
        bioes_to_bio,
        chunks,
        detect_scheme,
        is_valid,
    )
    from birnn.data.vocab import Vocab

_MODULES = {
    "batching": ("Batch", "batch_indices", "collate", "pad"),
    "readers": ("read_columns", "read_conllu", "read_symbol_sequences", "read_tagged", "read_text"),
    "registry": ("data_home", "resolve"),
    "tagschemes": ("allowed_transitions", "bio_to_bioes", "bioes_to_bio", "chunks", "detect_scheme", "is_valid"),
    "vocab": ("Vocab",),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "Batch",
    "Vocab",
    "allowed_transitions",
    "batch_indices",
    "bio_to_bioes",
    "bioes_to_bio",
    "chunks",
    "collate",
    "data_home",
    "detect_scheme",
    "is_valid",
    "pad",
    "read_columns",
    "read_conllu",
    "read_symbol_sequences",
    "read_tagged",
    "read_text",
    "resolve",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'birnn.data' has no attribute {name!r}")
    return getattr(import_module(f"birnn.data.{_HOME[name]}"), name)
