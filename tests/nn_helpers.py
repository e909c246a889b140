"""Parity helper for the torch engine: compare outputs and every parameter gradient."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

TORCH_CELLS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


def torch_reference(module, x, lengths=None):
    """Run a torch bidirectional RNN on padded (lengths None) or packed input. -> output (B, T, 2H), h_n."""
    if lengths is None:
        return module(x)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, final = module(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, final


def assert_same_gradients(ours, theirs, atol=1e-10):
    """Parameters with equal names must have equal gradients."""
    theirs_by_name = dict(theirs.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    assert names and set(names) == set(theirs_by_name)
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, theirs_by_name[name].grad, atol=atol, rtol=0, msg=name)
