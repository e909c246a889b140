"""ONNX-exportable forms of the networks: the same weights, written with operations that
``torch.onnx.export`` (TorchScript-based) turns into ONNX graphs with dynamic batch and time axes.

- ``packed_rnn(rnn)``: a ``BiRNN`` (or a one-directional ``nn.LSTM/GRU/RNN``) as torch's fused
  module run on ``pack_padded_sequence`` input. The exporter turns that into ONNX ``LSTM``/``GRU``/
  ``RNN`` nodes fed with ``sequence_lens``, whose reverse direction starts at each sequence's
  last real step (ONNX operator spec), so padded batches are exact and padding outputs zero.
- ``WordChars(encoder)``: a character encoder on a flat (N, C) batch of words, a graph of its
  own, so that a caller encodes each distinct word once and reuses its vector.
- ``viterbi_decode`` and ``crf_marginals``: the CRF's max-product and sum-product recursions as
  TorchScript loops, which export as ONNX ``Loop`` nodes (any T).

Tests compare each against the module it stands for, in torch and in onnxruntime.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from birnn.nn.birnn import BiRNN
from birnn.nn.chars import CharBiLSTM, CharCNN

_TORCH_RNN = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}


class PackedRNN(nn.Module):
    """``PackedRNN(rnn)`` with rnn a torch ``nn.LSTM/GRU/RNN`` (batch_first); call
    ``(x (B, T, I) float, lengths (B,) int64) -> (out (B, T, D·H) zero at padding, summary (B, D·H))``,
    summary = the top layer's final hidden state per direction, [→h after x[lengths-1] ; ←h after x[0]]."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])[0]
        # the summary is read from out, not from the final states: the exporter fails on a packed
        # RNN whose output sequence is unused
        hidden = self.rnn.hidden_size
        last = out.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])).squeeze(1)  # (B, D·H)
        if not self.rnn.bidirectional:
            return out, last
        return out, torch.cat([last[:, :hidden], out[:, 0, hidden:]], dim=-1)


def packed_rnn(rnn: nn.Module) -> PackedRNN:
    """A ``BiRNN`` (concat merge, equal direction sizes) or a torch RNN as a ``PackedRNN`` with copies
    of its weights; BiRNN's parameter names are torch's, so its state_dict loads as it is."""
    if isinstance(rnn, nn.RNNBase):
        if not rnn.batch_first:
            raise ValueError("rnn must be batch_first")
        return PackedRNN(rnn)
    if not isinstance(rnn, BiRNN):
        raise TypeError(f"rnn must be a birnn.nn.BiRNN or a torch nn.LSTM/GRU/RNN; got {type(rnn).__name__}")
    if rnn.hidden_size != rnn.backward_hidden_size or rnn.merge != "concat":
        raise ValueError("only BiRNNs with directions of equal size and merge='concat' can be exported; "
                         f"got hidden sizes {rnn.hidden_size}/{rnn.backward_hidden_size}, merge={rnn.merge!r}")
    extra = {"nonlinearity": rnn.cell.removeprefix("rnn_")} if rnn.cell.startswith("rnn_") else {}
    torch_rnn = _TORCH_RNN[rnn.cell](rnn.input_size, rnn.hidden_size, rnn.num_layers, bias=rnn.bias,
                                     batch_first=True, bidirectional=True, **extra)
    torch_rnn.load_state_dict(rnn.state_dict())
    return PackedRNN(torch_rnn.to(next(rnn.parameters()).device))


class WordChars(nn.Module):
    """``WordChars(encoder)`` for a ``CharBiLSTM`` or ``CharCNN``; call
    ``(chars (N, C) int64, char_lengths (N,) int64 in [1, C]) -> (N, D)``: one vector per word,
    the encoder's ``encode`` (a CharBiLSTM through ``packed_rnn``). C may exceed the longest word
    (the extra columns are padding), and a word's vector does not depend on the other words.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        if not isinstance(encoder, (CharBiLSTM, CharCNN)):
            raise TypeError(f"encoder must be a CharBiLSTM or CharCNN; got {type(encoder).__name__}")
        self.encoder = encoder
        self.rnn = packed_rnn(encoder.rnn) if isinstance(encoder, CharBiLSTM) else None
        self.output_size = encoder.output_size

    def forward(self, chars: torch.Tensor, char_lengths: torch.Tensor) -> torch.Tensor:
        if self.rnn is not None:
            return self.rnn(self.encoder.embedding(chars), char_lengths)[1]  # (N, 2Hc)
        return self.encoder.encode(chars, char_lengths)  # (N, F)


@torch.jit.script
def viterbi_decode(emissions: torch.Tensor, lengths: torch.Tensor, transitions: torch.Tensor,
                   start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """argmax_y score(y) (``birnn.nn.crf``). emissions (B, T, K), lengths (B,) int64 in [1, T],
    transitions (K, K) (row: previous tag), start/end (K,), -inf where disallowed -> paths (B, T) int64, 0 at padding.

        δ_0 = start + u_0,   δ_t(k) = max_i δ_{t-1}(i) + A[i, k] + u_t(k),   ψ_t(k) = argmax_i (same)
        y_{n-1} = argmax_k δ_{n-1}(k) + end(k),   y_{t-1} = ψ_t(y_t)

    Padding steps (t >= lengths[b]) carry δ unchanged, so δ_{T-1} = δ_{n-1}.
    """
    batch, steps, tags = emissions.shape[0], emissions.shape[1], emissions.shape[2]
    delta = start.unsqueeze(0) + emissions[:, 0]  # (B, K)
    pointers = torch.zeros(steps, batch, tags, dtype=torch.int64, device=emissions.device)  # ψ_t
    for t in range(1, steps):
        best, previous = (delta.unsqueeze(2) + transitions.unsqueeze(0)).max(dim=1)  # (B, K) each
        delta = torch.where((lengths > t).unsqueeze(1), best + emissions[:, t], delta)
        pointers[t] = previous
    current = (delta + end.unsqueeze(0)).argmax(dim=1)  # (B,) y_{n-1}
    paths = torch.zeros(steps, batch, dtype=torch.int64, device=emissions.device)
    for back in range(steps):
        t = steps - 1 - back
        valid = lengths > t
        paths[t] = torch.where(valid, current, torch.zeros_like(current))
        if t > 0:
            current = torch.where(valid, pointers[t].gather(1, current.unsqueeze(1)).squeeze(1), current)
    return paths.transpose(0, 1)


@torch.jit.script
def crf_marginals(emissions: torch.Tensor, lengths: torch.Tensor, transitions: torch.Tensor,
                  start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """p(y_t = k | x) by forward–backward in log space. Shapes as ``viterbi_decode`` -> (B, T, K), 0 at padding.

        log α_0 = start + u_0,          log α_t(k) = logsumexp_i (log α_{t-1}(i) + A[i, k]) + u_t(k)
        log β_{n-1} = end,              log β_t(i) = logsumexp_k (A[i, k] + u_{t+1}(k) + log β_{t+1}(k))
        p(y_t = k | x) = exp(log α_t(k) + log β_t(k) - log Z),   log Z = logsumexp_k (log α_{n-1}(k) + end(k))

    On padding steps α is carried and β restarts at ``end``, so both are exact at every valid step.
    """
    steps = emissions.shape[1]
    alpha = start.unsqueeze(0) + emissions[:, 0]  # (B, K)
    log_p = torch.zeros(steps, alpha.shape[0], alpha.shape[1], dtype=emissions.dtype, device=emissions.device)
    log_p[0] = alpha
    for t in range(1, steps):
        step = torch.logsumexp(alpha.unsqueeze(2) + transitions.unsqueeze(0), dim=1) + emissions[:, t]
        alpha = torch.where((lengths > t).unsqueeze(1), step, alpha)
        log_p[t] = alpha  # log α_t
    log_z = torch.logsumexp(alpha + end.unsqueeze(0), dim=1)  # (B,)
    beta = end.unsqueeze(0).expand_as(alpha)  # (B, K) at t = T - 1
    log_p[steps - 1] = log_p[steps - 1] + beta
    for back in range(1, steps):
        t = steps - 1 - back
        step = torch.logsumexp(transitions.unsqueeze(0) + (emissions[:, t + 1] + beta).unsqueeze(1), dim=2)
        beta = torch.where((lengths > t + 1).unsqueeze(1), step, end.unsqueeze(0).expand_as(step))
        log_p[t] = log_p[t] + beta  # log α_t + log β_t
    log_p = log_p.transpose(0, 1) - log_z[:, None, None]  # (B, T, K)
    valid = torch.arange(steps, device=emissions.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    return torch.where(valid.unsqueeze(2), torch.exp(log_p), torch.zeros_like(log_p))
