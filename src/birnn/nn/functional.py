"""Pure functions on padded batches: reversal, merges, input checks, the final LSTM cell state.

Conventions: batch-first ``x: (B, T, F)``; ``lengths: (B,)`` int64 with
1 <= lengths[b] <= T; positions t >= lengths[b] are padding. The padding mask,
merge names and the lengths check are ``birnn.spec``'s, shared with the NumPy engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from birnn.spec import check_lengths, padding_mask

Merge = str | None | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def zero_padding(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """x with every padding position t >= lengths[b] set to 0. x: (B, T, F) -> (B, T, F)."""
    if lengths is None:
        return x
    return x * padding_mask(lengths, x.shape[1])[..., None]  # a product with the mask: cheaper than masked_fill on CPU


def merge_then_zero(merge: Merge, forward: torch.Tensor, backward: torch.Tensor, lengths: torch.Tensor | None):
    """``merge_directions`` of two outputs that may hold anything at padding, zero at padding.

    Linear merges (concat, sum, ave) commute with zeroing, so the merged output is
    zeroed once; "mul", None and callables see zeroed directions (a product with
    a padding value, or a merge that mixes time steps, must not see them), and a
    callable's output (B, T, F) is zeroed again, since it may write to padding.
    """
    if merge in ("concat", "sum", "ave"):
        merged = merge_directions(merge, forward, backward)  # a new tensor, so zeroed in place
        return merged if lengths is None else merged.mul_(padding_mask(lengths, merged.shape[1])[..., None])
    merged = merge_directions(merge, zero_padding(forward, lengths), zero_padding(backward, lengths))
    return zero_padding(merged, lengths) if callable(merge) else merged


def reversal_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """index[b, t] = lengths[b] - 1 - t for valid t, and t at padding. -> (B, T) int64."""
    t = torch.arange(steps, device=lengths.device)[None, :]
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


class Reversal(NamedTuple):
    """The permutation of ``reverse_padded`` for one batch, as rows of either memory layout of (B, T, ...)."""

    batch_major: torch.Tensor  # (B·T,): the row of the (B·T, ...) view that position (b, t) reads
    time_major: torch.Tensor  # (T·B,): the row of the (T·B, ...) view that position (t, b) reads


def reversal_rows(lengths: torch.Tensor | None, steps: int) -> Reversal | None:
    """The reversal of a batch with these lengths, shared by every tensor reversed in one call.

    None for lengths None (every sequence has length T: ``reverse_rows`` then flips).
    """
    if lengths is None:
        return None
    index = reversal_index(lengths, steps)  # (B, T)
    batch = lengths.shape[0]
    sequence = torch.arange(batch, device=lengths.device)
    return Reversal((index + steps * sequence[:, None]).reshape(-1), (index.T * batch + sequence).reshape(-1))


def as_rows(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """x: (B, T, ...) as a view of rows, one per position -> (rows (B·T, ...) or (T·B, ...), time_major).

    Time-major when x is a transposed view of a contiguous (T, B, ...) tensor, as the
    outputs of torch's batch_first RNNs are; otherwise batch-major (a copy only when x
    is neither). Gathering rows of this view never copies the whole tensor first.
    """
    batch, steps = x.shape[:2]
    by_time = x.transpose(0, 1)
    if not x.is_contiguous() and by_time.is_contiguous():
        return by_time.view(steps * batch, *x.shape[2:]), True
    return x.reshape(batch * steps, *x.shape[2:]), False


def _permute_rows(x: torch.Tensor, reversal: Reversal) -> torch.Tensor:
    """x (B, T, ...) reversed in the layout it comes in."""
    rows, time_major = as_rows(x)
    if time_major:
        steps, batch = x.shape[1], x.shape[0]
        return rows.index_select(0, reversal.time_major).view(steps, batch, *x.shape[2:]).transpose(0, 1)
    return rows.index_select(0, reversal.batch_major).view(x.shape)


class _Reversal(torch.autograd.Function):
    """A gather of whole rows by a reversal; the gradient is the same reversal.

    A reversal is a permutation and its own inverse, so backward is one more row
    gather (not the scatter-add that ``gather``/``index_select`` would backpropagate).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, reversal: Reversal) -> torch.Tensor:
        ctx.reversal = reversal
        return _permute_rows(x, reversal)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _permute_rows(grad, ctx.reversal), None


def reverse_rows(x: torch.Tensor, reversal: Reversal | None) -> torch.Tensor:
    """``reverse_padded`` with the reversal precomputed by ``reversal_rows`` (shared by several tensors)."""
    if reversal is None:
        return x.flip(1)
    if not (x.requires_grad and torch.is_grad_enabled()):
        return _permute_rows(x, reversal)  # nothing to backpropagate: no autograd node
    return _Reversal.apply(x, reversal)


def reverse_padded(x: torch.Tensor, lengths: Any) -> torch.Tensor:
    """Reverse each sequence's valid prefix and keep its padding in place (its own inverse).

        out[b, t] = x[b, lengths[b] - 1 - t]  for t < lengths[b],   out[b, t] = x[b, t] otherwise

    x: (B, T, ...); lengths: (B,) integers in [1, T], or None (all of length T, a plain flip)
    -> (B, T, ...). Implemented as a gather of whole rows (``as_rows``): one contiguous copy per token.
    """
    if lengths is None:
        return x.flip(1)
    if x.dim() < 2:
        raise ValueError(f"x must have shape (B, T, ...); got {tuple(x.shape)}")
    return reverse_rows(x, reversal_rows(as_lengths(lengths, x.shape[0], x.shape[1], x.device), x.shape[1]))


def last_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x[b, lengths[b] - 1]. x: (B, T, H) -> (B, H), as a gather of B rows (``as_rows``)."""
    batch, steps = x.shape[:2]
    sequence = torch.arange(batch, device=x.device)
    last = lengths.to(x.device) - 1
    rows, time_major = as_rows(x)
    return rows.index_select(0, last * batch + sequence if time_major else sequence * steps + last)


def concat_features(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """[→h ; ←h] along the last dimension: (B, T, Hf), (B, T, Hb) -> (B, T, Hf+Hb).

    When both are time-major views (torch's batch_first RNN outputs, and their reversals by
    ``reverse_rows``), the copy runs in that layout, reading and writing contiguous rows, and
    the result is a time-major view too, as torch's own bidirectional output is.
    """
    forward_rows, backward_rows = forward.transpose(0, 1), backward.transpose(0, 1)
    if not forward.is_contiguous() and forward_rows.is_contiguous() and backward_rows.is_contiguous():
        return torch.cat([forward_rows, backward_rows], dim=-1).transpose(0, 1)
    return torch.cat([forward, backward], dim=-1)


def merge_directions(merge: Merge, forward: torch.Tensor, backward: torch.Tensor):
    """Combine the two directions' outputs, (B, T, Hf) and (B, T, Hb).

    concat: [→h ; ←h] (B, T, Hf+Hb); sum: →h + ←h; mul: →h ⊙ ←h; ave: (→h + ←h) / 2;
    None: the pair itself; a callable: merge(→h, ←h), which must return (B, T, F).
    """
    if merge == "concat":
        return concat_features(forward, backward)
    if merge == "sum":
        return forward + backward
    if merge == "mul":
        return forward * backward
    if merge == "ave":
        return (forward + backward) / 2
    if merge is None:
        return forward, backward
    assert callable(merge), merge  # check_merge admitted only names, None and callables
    return merge(forward, backward)


def as_lengths(lengths: Any, batch: int, steps: int, device: torch.device) -> torch.Tensor | None:
    """``spec.check_lengths`` (the NumPy engine's check and messages) -> (B,) int64 on ``device``,
    or None when every sequence has length T (nothing is padding)."""
    checked = check_lengths(lengths, batch, steps)
    if checked.size == 0 or checked.min() == steps:
        return None
    if isinstance(lengths, torch.Tensor):
        return lengths.to(device=device, dtype=torch.int64)
    return torch.as_tensor(checked, device=device)


def check_sequence_input(
    x: torch.Tensor, lengths: Any, input_size: int | None, module: torch.nn.Module | None = None
) -> torch.Tensor | None:
    """Validate a padded batch; return lengths as int64 on x's device (moved there from any
    device), None if not given or all T.

    x: (B, T, I) float, of ``module``'s parameters' dtype and on their device when a module is
    given (outside autocast); lengths: (B,) integers in [1, T].
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (B, T, I); got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, T, I) (batch first); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a float tensor; got dtype {x.dtype}")
    if module is not None:
        _check_like_parameters(x, module)
    batch, steps, features = x.shape
    if batch == 0 or steps == 0:
        raise ValueError(f"x must hold at least one step of one sequence; got shape {tuple(x.shape)}")
    if input_size is not None and features != input_size:
        raise ValueError(f"x must have {input_size} features (input_size); got {features} (shape {tuple(x.shape)})")
    if lengths is None:
        return None
    return as_lengths(lengths, batch, steps, x.device)


def _check_like_parameters(x: torch.Tensor, module: torch.nn.Module) -> None:
    """x must have the dtype and the device of every parameter of ``module`` (the kernels mix no
    dtypes or devices); under autocast the kernels cast, so only the device is checked."""
    kind = x.device.type
    autocast = torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind)
    for name, parameter in module.named_parameters():
        if parameter.device != x.device:
            raise ValueError(
                f"x must be on the device of the module's parameters, {parameter.device} ({name}); "
                f"got x on {x.device} (move x with x.to({str(parameter.device)!r}))"
            )
        if parameter.dtype != x.dtype and not autocast:
            raise TypeError(
                f"x must have the dtype of the module's parameters, {parameter.dtype} ({name}); got x of dtype "
                f"{x.dtype} (convert x with x.to({parameter.dtype}) or the module with module.to({x.dtype}))"
            )


def lstm_cell_state(
    x: torch.Tensor,
    h: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    weights: list[torch.Tensor],
    lengths: torch.Tensor,
) -> torch.Tensor:
    """The LSTM cell state after each sequence's last valid step, recomputed from the outputs.

    A fused kernel on a padded batch returns every h_t but only the cell state
    after step T. The gates at step t depend only on x_t and h_{t-1}, and the
    output gate does not reach c, so with the i, f, g rows of the weights

        [i, f, g]_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh      (valid steps only)
        c_t = σ(f_t) ⊙ c_{t-1} + σ(i_t) ⊙ tanh(g_t)                (f = 1, i ⊙ g = 0 for t >= lengths[b])

    gives c_{lengths[b]-1} with two GEMMs over the valid steps (padding is never
    computed) and one fused op per step.

    x: (B, T, I); h: (B, T, H) the layer's outputs; h0, c0: (B, H);
    weights: [W_ih (4H, I), W_hh (4H, H), b_ih (4H,), b_hh (4H,)] (biases optional) -> c (B, H)
    """
    batch, steps, features = x.shape
    hidden = h0.shape[-1]
    rows = 3 * hidden  # i, f, g
    valid = padding_mask(lengths, steps).reshape(-1).nonzero().squeeze(1)  # (N,) rows of (B·T) that are valid
    h_previous = torch.cat([h0.unsqueeze(1), h[:, :-1]], dim=1).reshape(batch * steps, hidden).index_select(0, valid)
    x_valid = x.reshape(batch * steps, features).index_select(0, valid)  # (N, I)
    if len(weights) == 4:
        gates = torch.addmm(weights[2][:rows] + weights[3][:rows], x_valid, weights[0][:rows].T)
    else:
        gates = x_valid @ weights[0][:rows].T
    gates = torch.addmm(gates, h_previous, weights[1][:rows].T)  # (N, 3H)
    i, f, g = gates.chunk(3, dim=-1)
    update = x.new_zeros(batch * steps, hidden).index_copy(0, valid, torch.sigmoid(i) * torch.tanh(g))
    forget = x.new_ones(batch * steps, hidden).index_copy(0, valid, torch.sigmoid(f))
    update, forget = update.view(batch, steps, hidden), forget.view(batch, steps, hidden)
    c = c0
    for t in range(steps):  # c · 1 + 0 past the end: exactly frozen, and no host sync for max(lengths)
        c = torch.addcmul(update[:, t], forget[:, t], c)
    return c
