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


def valid_mask(lengths, steps):
    """(B, T, 1) float: 1 at valid positions t < lengths[b], written out here rather than taken from the library."""
    return (torch.arange(steps)[None, :] < torch.as_tensor(lengths)[:, None]).unsqueeze(-1).to(torch.float64)


def _cat_states(states):
    """Per-sequence final states (L, 1, H), or pairs of them, -> (L, B, H) (pairs elementwise)."""
    if isinstance(states[0], tuple):
        return tuple(torch.cat(parts, dim=1) for parts in zip(*states, strict=True))
    return torch.cat(states, dim=1)


def bidirectional_by_hand(forward, backward, x, lengths, merge):
    """What ``Bidirectional(forward, backward, merge)(x, lengths)`` must return, from the two bare modules.

    forward, backward: unidirectional torch RNNs (batch_first); merge: a callable (→h, ←h) -> (B, T, F)
    or None (the pair). The forward module reads x, the backward one reverse_padded(x, lengths) and its
    output is reversed back; both are zeroed at padding before the merge. Finals come from each sequence
    run alone (the forward one on x[b, :n], the backward one on x[b, :n] flipped).
    -> (output: merged directions, meaningful at valid positions; finals (fwd, bwd) as (L, B, H) or pairs)
    """
    from birnn.nn import reverse_padded

    mask = valid_mask(lengths, x.shape[1]).to(x.dtype)
    out_fwd = forward(x)[0] * mask
    out_bwd = reverse_padded(backward(reverse_padded(x, lengths))[0], lengths) * mask
    output = (out_fwd, out_bwd) if merge is None else merge(out_fwd, out_bwd)
    lengths = [int(n) for n in lengths]
    final_fwd = _cat_states([forward(x[b : b + 1, :n])[1] for b, n in enumerate(lengths)])
    final_bwd = _cat_states([backward(x[b : b + 1, :n].flip(1))[1] for b, n in enumerate(lengths)])
    return output, (final_fwd, final_bwd)


def assert_same_state(ours, expected, **tolerance):
    """A final state (tensor or pair of tensors) equal to the expected one, pairs elementwise."""
    if isinstance(expected, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(expected)
        for mine, theirs in zip(ours, expected, strict=True):
            torch.testing.assert_close(mine, theirs, **tolerance)
    else:
        torch.testing.assert_close(ours, expected, **tolerance)
