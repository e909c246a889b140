"""Corpora, vocabularies and batching: files and names in, padded tensors with lengths out."""

from birnn.data.batching import Batch, batch_indices, collate, pad
from birnn.data.readers import read_columns, read_conllu, read_symbol_sequences, read_tagged, read_text
from birnn.data.registry import data_home, resolve
from birnn.data.tagschemes import allowed_transitions, bio_to_bioes, bioes_to_bio, chunks, detect_scheme, is_valid
from birnn.data.vocab import Vocab

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
