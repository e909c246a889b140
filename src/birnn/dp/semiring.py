"""Log-semiring and max-plus matrix products, safe with -inf entries.

In the log semiring, "addition" is logsumexp and "multiplication" is +, so the
matrix product is

    (A ⊗ B)[i, j] = log Σ_k exp(A[i, k] + B[k, j]).

The max-plus semiring replaces logsumexp by max (Viterbi).
"""

from __future__ import annotations

import torch


def safe_log(x: torch.Tensor) -> torch.Tensor:
    """log x with log 0 = -inf and a zero (not NaN) gradient where x == 0."""
    positive = x > 0
    return torch.where(positive, torch.log(torch.where(positive, x, torch.ones_like(x))), -torch.inf)


def finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    """Replace ±inf by 0: a shift that never produces inf - inf = NaN."""
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """log Σ exp(x) along ``dim``: -inf (with zero gradient, not NaN) where all terms are -inf.

    logsumexp(x) = m + log Σ_i exp(x_i - m),  m = max_i x_i (0 if not finite)
    """
    shift = finite_or_zero(x.amax(dim=dim, keepdim=True).detach())
    return safe_log(torch.exp(x - shift).sum(dim=dim)) + shift.squeeze(dim)


def log_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Log-semiring matrix product. a: (..., I, K), b: (..., K, J) -> (..., I, J).

    Computed as exp-matmul-log with row maxima of ``a`` and column maxima of
    ``b`` shifted out, so the GEMM runs on numbers in [0, 1]:

        (A ⊗ B)[i, j] = a_i + b_j + log Σ_k exp(A[i,k] - a_i) exp(B[k,j] - b_j).

    Exact up to underflow of terms more than ~700 (float64) or ~87 (float32)
    below their row/column maximum.
    """
    a_max = finite_or_zero(a.amax(dim=-1, keepdim=True).detach())  # (..., I, 1)
    b_max = finite_or_zero(b.amax(dim=-2, keepdim=True).detach())  # (..., 1, J)
    product = torch.exp(a - a_max) @ torch.exp(b - b_max)
    return safe_log(product) + a_max + b_max


def max_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Max-plus matrix product. a: (..., I, K), b: (..., K, J) -> (..., I, J).

    (A ⊙ B)[i, j] = max_k A[i, k] + B[k, j].
    """
    return (a.unsqueeze(-1) + b.unsqueeze(-3)).amax(dim=-2)


def exp_shifted(m: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A log-score matrix as a GEMM operand: m (K, K) -> (exp(m - s) in the accumulation dtype
    (``wide``), s), s = the finite maxima of m along ``dim`` (kept as a size-1 dim, not
    differentiated), so that m = s + log exp(m - s) with every entry of exp(m - s) in [0, 1]."""
    shift = finite_or_zero(m.amax(dim=dim, keepdim=True).detach())
    return torch.exp(m - shift).to(wide(m)), shift


def wide(x: torch.Tensor) -> torch.dtype:
    """float64 where the device has it (not Apple's MPS): the dtype the log-space GEMMs accumulate
    in, so terms underflow only ~708 (not ~87) below their maxima."""
    return x.dtype if x.device.type == "mps" else torch.float64
