"""Chain dynamic programming in log space (torch): the engine under HMMs and CRFs.

Every function takes log scores of a linear chain,

    log_start (K,), log_trans (K, K) [from row to column], log_unary (B, T, K),

and optional ``lengths`` (B,) in [1, T]; positions past ``lengths[b]`` never
change a result for sequence b. All functions are differentiable (autograd),
work in float32 and float64, and accept -inf scores (impossible starts,
transitions or emissions) without producing NaN. A sequence on which every
path is impossible has log Z = -inf, marginals 0 everywhere, and a Viterbi
score of -inf (with some path of valid states).

Two implementations compute the same quantities:

- ``"sequential"``: T steps of O(B K²) work each (``birnn.dp.sequential``);
- ``"scan"``: an associative scan of depth ⌈log2 T⌉ over log-semiring matrix
  products, O(B T K³ log T) work (``birnn.dp.scan``).

``method="auto"`` picks the scan when per-step overhead dominates
(``choose_method``).
"""

from __future__ import annotations

import torch

from birnn.dp import scan as _scan
from birnn.dp import sequential as _sequential
from birnn.dp._inputs import check_chain
from birnn.dp.semiring import finite_or_zero, log_matmul, max_matmul
from birnn.spec import padding_mask

__all__ = [
    "backward",
    "choose_method",
    "forward",
    "log_matmul",
    "log_partition",
    "marginals",
    "max_matmul",
    "pairwise_marginals",
    "viterbi",
]

_METHODS = ("auto", "sequential", "scan")


def choose_method(batch: int, steps: int, states: int) -> str:
    """Pick "scan" or "sequential" for a chain of the given size.

    The sequential recursion pays a fixed cost of Python and kernel launches
    per step, whatever B and K; the scan does ⌈log2 T⌉ batched products over
    B·T·K³ numbers. The scan wins on long chains of little work per step:
    T >= 32 and B·K³ <= 128 (figures in docs/performance.md).
    """
    return "scan" if steps >= 32 and batch * states**3 <= 128 else "sequential"


def _resolve(method: str, log_unary: torch.Tensor) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}")
    if method == "auto":
        return choose_method(*log_unary.shape)
    return method


def forward(
    log_start: torch.Tensor,
    log_trans: torch.Tensor,
    log_unary: torch.Tensor,
    lengths: torch.Tensor | None = None,
    method: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward messages and log-partition. -> log_alpha (B, T, K) (-inf at padding), log_z (B,).

    log α_t(k) = log_unary[t, k] + log Σ_i exp(log α_{t-1}(i) + log_trans[i, k])
    """
    lengths = check_chain(log_start, log_trans, log_unary, lengths)
    if _resolve(method, log_unary) == "scan":
        log_alpha, _, log_z = _scan.forward_backward(log_start, log_trans, log_unary, lengths)
        return log_alpha, log_z
    return _sequential.forward(log_start, log_trans, log_unary, lengths)


def backward(
    log_start: torch.Tensor,
    log_trans: torch.Tensor,
    log_unary: torch.Tensor,
    lengths: torch.Tensor | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """Backward messages. -> log_beta (B, T, K), 0 at each sequence's last step, -inf at padding.

    log β_t(k) = log Σ_j exp(log_trans[k, j] + log_unary[t+1, j] + log β_{t+1}(j))
    """
    lengths = check_chain(log_start, log_trans, log_unary, lengths)
    if _resolve(method, log_unary) == "scan":
        return _scan.forward_backward(log_start, log_trans, log_unary, lengths)[1]
    return _sequential.backward(log_trans, log_unary, lengths)


def log_partition(
    log_start: torch.Tensor,
    log_trans: torch.Tensor,
    log_unary: torch.Tensor,
    lengths: torch.Tensor | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """log Z = log Σ_h exp s(h) over all K^T label paths. -> (B,).

    Its gradient with respect to ``log_unary`` is the unary marginals, with
    respect to ``log_trans`` the pairwise marginals summed over time, with respect
    to ``log_start`` the marginals of the first step; autograd gets them from one
    backward recursion (``_LogPartition``) rather than by differentiating the
    forward recursion step by step.
    """
    lengths = check_chain(log_start, log_trans, log_unary, lengths)
    sequential = _resolve(method, log_unary) == "sequential"
    if sequential and torch.is_grad_enabled() and any(t.requires_grad for t in (log_start, log_trans, log_unary)):
        log_z: torch.Tensor = _LogPartition.apply(log_start, log_trans, log_unary, lengths)
        return log_z
    return forward(log_start, log_trans, log_unary, lengths, method)[1]


class _LogPartition(torch.autograd.Function):
    """log Z by the sequential recursion, with the forward–backward identity as its gradient
    (``sequential.log_z_gradients``). Not twice differentiable: a second derivative of log Z
    goes through ``marginals``."""

    @staticmethod
    def forward(ctx, log_start, log_trans, log_unary, lengths):  # type: ignore[no-untyped-def]
        ctx.scaled = _sequential.scaled_forward(log_start, log_trans, log_unary, lengths)
        return _sequential.scaled_log_z(ctx.scaled, lengths).to(log_unary.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_z):  # type: ignore[no-untyped-def]
        return (*_sequential.log_z_gradients(ctx.scaled, grad_z), None)


def _forward_backward(log_start, log_trans, log_unary, lengths, method):
    lengths = check_chain(log_start, log_trans, log_unary, lengths)
    if _resolve(method, log_unary) == "scan":
        return (*_scan.forward_backward(log_start, log_trans, log_unary, lengths), lengths)
    log_alpha, log_z = _sequential.forward(log_start, log_trans, log_unary, lengths)
    log_beta = _sequential.backward(log_trans, log_unary, lengths)
    return log_alpha, log_beta, log_z, lengths


def marginals(
    log_start: torch.Tensor,
    log_trans: torch.Tensor,
    log_unary: torch.Tensor,
    lengths: torch.Tensor | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """Unary marginals p(h_t = k) = exp(log α_t(k) + log β_t(k) - log Z). -> (B, T, K), 0 at padding.

    0 everywhere on a sequence with log Z = -inf (no possible path), where log α + log β is -inf too.
    """
    log_alpha, log_beta, log_z, _ = _forward_backward(log_start, log_trans, log_unary, lengths, method)
    return torch.exp(log_alpha + log_beta - _normaliser(log_z)[:, None, None])


def _normaliser(log_z: torch.Tensor) -> torch.Tensor:
    """log Z with -inf replaced by 0: an impossible sequence then gives exp(-inf - 0) = 0, not NaN."""
    return finite_or_zero(log_z)


def pairwise_marginals(
    log_start: torch.Tensor,
    log_trans: torch.Tensor,
    log_unary: torch.Tensor,
    lengths: torch.Tensor | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """Pairwise marginals p(h_t = i, h_{t+1} = j). -> (B, T-1, K, K), 0 where t+1 is padding
    and on a sequence with log Z = -inf.

    ξ_t(i, j) = exp(log α_t(i) + log_trans[i, j] + log_unary[t+1, j] + log β_{t+1}(j) - log Z)
    """
    log_alpha, log_beta, log_z, lengths = _forward_backward(log_start, log_trans, log_unary, lengths, method)
    scores = (
        log_alpha[:, :-1, :, None]
        + log_trans
        + (log_unary[:, 1:] + log_beta[:, 1:])[:, :, None, :]
        - _normaliser(log_z)[:, None, None, None]
    )
    valid = padding_mask(lengths, log_unary.shape[1])[:, 1:, None, None]
    return torch.where(valid, torch.exp(scores), torch.zeros_like(scores))


def viterbi(
    log_start: torch.Tensor,
    log_trans: torch.Tensor,
    log_unary: torch.Tensor,
    lengths: torch.Tensor | None = None,
    method: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The highest-scoring path and its score. -> paths (B, T) int64 (0 at padding), scores (B,).

    The scan computes max-marginals; where several paths tie for the best
    score it may mix them, so pass ``method="sequential"`` when ties matter.
    """
    lengths = check_chain(log_start, log_trans, log_unary, lengths)
    if _resolve(method, log_unary) == "scan":
        return _scan.viterbi(log_start, log_trans, log_unary, lengths)
    return _sequential.viterbi(log_start, log_trans, log_unary, lengths)
