"""The discrete hidden Markov model: parameters, validation, sampling, JSON.

P(h_0 = k) = π_k,   P(h_t = j | h_{t-1} = i) = A_ij,   P(x_t = v | h_t = k) = E_kv
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from birnn.hmm import inference, kernels, learning
from birnn.hmm._inputs import as_observations
from birnn.spec import check_memory

_FORMAT = "birnn.hmm"
_ROW_TOLERANCE = 1e-6
_TABLES = 6  # float64 tables of one size that Baum–Welch holds at once (parameters, counts; α̂, β̂, γ)
_SAMPLE_BLOCK = 1 << 20  # uniforms drawn at a time (8 MiB)


def _probabilities(value: Any, name: str, ndim: int) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of probabilities; got {type(value).__name__}") from exc
    if array.ndim != ndim:
        expected = "(K,)" if ndim == 1 else "(K, K)" if name == "transition" else "(K, V)"
        raise ValueError(f"{name} must have shape {expected}; got {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    if array.min() < 0:
        raise ValueError(f"{name} must be non-negative; got min {array.min():.6g}")
    sums = array.sum(axis=-1)
    if np.any(np.abs(sums - 1.0) > _ROW_TOLERANCE):
        shown = np.array2string(np.atleast_1d(sums), precision=6, threshold=10)
        raise ValueError(f"{name} rows must sum to 1; got row sums {shown}")
    return array


class HMM:
    """A discrete HMM with K hidden states and V symbols.

    start: (K,), transition: (K, K) [row = from], emission: (K, V); NumPy arrays,
    torch tensors or nested lists of probabilities, each row summing to 1.

    Every inference method takes ``obs`` as one 1-D sequence (unbatched
    result), a padded (B, T) batch with ``lengths``, or a list of sequences,
    and answers in the kind it was given (NumPy or torch); padding positions
    of outputs are 0.

    A sequence the model cannot produce (probability 0, e.g. a symbol that no
    reachable state emits) has ``log_likelihood`` -inf and a Viterbi
    log-probability of -inf; ``filter``, ``posterior``, ``pairwise_posterior``
    and ``fit`` raise a ValueError naming the sequence's index and the first
    impossible step, since probabilities conditioned on it are undefined.
    """

    def __init__(self, start: Any, transition: Any, emission: Any) -> None:
        self.start = _probabilities(start, "start", 1)
        self.transition = _probabilities(transition, "transition", 2)
        self.emission = _probabilities(emission, "emission", 2)
        k = self.start.shape[0]
        if self.transition.shape != (k, k):
            raise ValueError(
                f"transition must have shape (K, K) = ({k}, {k}) to match start; got {self.transition.shape}"
            )
        if self.emission.shape[0] != k:
            raise ValueError(f"emission must have K={k} rows to match start; got shape {self.emission.shape}")

    @property
    def n_states(self) -> int:
        return self.start.shape[0]

    @property
    def n_symbols(self) -> int:
        return self.emission.shape[1]

    def __repr__(self) -> str:
        return f"HMM(n_states={self.n_states}, n_symbols={self.n_symbols})"

    def _params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.start, self.transition, self.emission

    # ----- sampling ---------------------------------------------------------------------------
    def sample(self, n: int, T: int, seed: int | np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw n sequences of length T. -> obs (n, T) int64, states (n, T) int64.

        Compiled inverse-CDF draws from uniforms taken in blocks of ``_SAMPLE_BLOCK``: memory
        beyond the two outputs is bounded, and the draws are those of one uniform per state
        (time-major) followed by one per observation (row-major).
        """
        if n < 1 or T < 1:
            raise ValueError(f"n and T must be >= 1; got n={n}, T={T}")
        check_memory(2 * 8 * n * T, f"sampling n={n:,} sequences of T={T:,} steps")
        rng = np.random.default_rng(seed)
        states = np.empty((n, T), dtype=np.int64)
        steps = max(1, _SAMPLE_BLOCK // n)
        cumulative_start, cumulative_trans = np.cumsum(self.start), np.cumsum(self.transition, axis=1)
        for first in range(0, T, steps):
            uniforms = rng.random((min(steps, T - first), n))
            kernels.sample_chain(cumulative_start, cumulative_trans, uniforms, first, states)
        obs = np.empty(n * T, dtype=np.int64)
        flat_states, cumulative_emission = states.reshape(-1), np.cumsum(self.emission, axis=1)
        for first in range(0, n * T, _SAMPLE_BLOCK):
            last = min(first + _SAMPLE_BLOCK, n * T)
            kernels.sample_rows(cumulative_emission, flat_states[first:last], rng.random(last - first),
                                obs[first:last])
        return obs.reshape(n, T), states

    # ----- inference --------------------------------------------------------------------------
    def log_likelihood(self, obs: Any, lengths: Any = None) -> Any:
        """log p(x_1..x_T) per sequence, -inf where it is 0. -> (B,) or a scalar array for one sequence."""
        data = as_observations(obs, lengths, self.n_symbols)
        _, log_c = inference.forward(*self._params(), data.obs, data.lengths)
        return data.give_back(log_c.sum(axis=1))

    def filter(self, obs: Any, lengths: Any = None) -> Any:
        """p(h_t | x_1..x_t): the forward pass alone, what a left-to-right reader knows. -> (B, T, K)."""
        data = as_observations(obs, lengths, self.n_symbols)
        alpha, log_c = inference.forward(*self._params(), data.obs, data.lengths)
        inference.check_possible(log_c)
        return data.give_back(alpha)

    def posterior(self, obs: Any, lengths: Any = None) -> Any:
        """p(h_t | x_1..x_T): forward–backward smoothing. -> (B, T, K)."""
        data = as_observations(obs, lengths, self.n_symbols)
        return data.give_back(inference.smooth(*self._params(), data.obs, data.lengths)[0])

    def pairwise_posterior(self, obs: Any, lengths: Any = None) -> Any:
        """p(h_t = i, h_{t+1} = j | x_1..x_T). -> (B, T-1, K, K)."""
        data = as_observations(obs, lengths, self.n_symbols)
        _, alpha, beta, log_c = inference.smooth(*self._params(), data.obs, data.lengths)
        return data.give_back(inference.pairwise(*self._params()[1:], data.obs, data.lengths, alpha, beta, log_c))

    def viterbi(self, obs: Any, lengths: Any = None) -> tuple[Any, Any]:
        """Most probable state path. -> paths (B, T) int64, log p(x, h*) (B,)."""
        data = as_observations(obs, lengths, self.n_symbols)
        paths, log_prob = inference.viterbi(*self._params(), data.obs, data.lengths)
        return data.give_back(paths), data.give_back(log_prob)

    # ----- learning ---------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        obs: Any,
        n_states: int,
        lengths: Any = None,
        n_iter: int = 100,
        tol: float = 1e-4,
        seed: int | None = None,
        n_symbols: int | None = None,
        init: HMM | None = None,
    ) -> tuple[HMM, list[float]]:
        """Baum–Welch from random (seeded) or given initial parameters.

        -> the fitted HMM and the total log-likelihood history (non-decreasing).
        ``n_symbols`` defaults to 1 + the largest symbol seen.
        """
        if n_states < 1:
            raise ValueError(f"n_states must be >= 1; got {n_states}")
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1; got {n_iter}")
        if init is not None:
            n_symbols = init.n_symbols
            if init.n_states != n_states:
                raise ValueError(f"init has {init.n_states} states; n_states is {n_states}")
        derived = n_symbols is None
        if n_symbols is None:
            n_symbols = _largest_symbol(obs) + 1
        what = f"an HMM of {n_states} states over {n_symbols:,} symbols" + " (1 + the largest symbol)" * derived
        check_memory(_TABLES * 8 * n_states * n_symbols, what)
        data = as_observations(obs, lengths, n_symbols)
        check_memory(_TABLES * 8 * data.obs.size * n_states, f"Baum–Welch on {data.obs.shape} observations")
        params = (
            init._params()
            if init is not None
            else learning.random_parameters(n_states, n_symbols, np.random.default_rng(seed))
        )
        fitted, history = learning.baum_welch(params, data.obs, data.lengths, n_iter, tol)
        return cls(*fitted), history

    # ----- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": 1,
            "start": self.start.tolist(),
            "transition": self.transition.tolist(),
            "emission": self.emission.tolist(),
        }

    def save(self, path: str | Path) -> None:
        """Write the parameters as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> HMM:
        """Read an HMM written by ``save``; errors name the file."""
        try:
            payload = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        except RecursionError:
            raise ValueError(f"{path}: not a birnn HMM file (JSON nested too deeply)") from None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f'{path}: not a birnn HMM file (expected "format": "{_FORMAT}")')
        missing = [key for key in ("start", "transition", "emission") if key not in payload]
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)}")
        try:
            return cls(payload["start"], payload["transition"], payload["emission"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc


def _largest_symbol(obs: Any) -> int:
    if isinstance(obs, (list, tuple)) and obs and all(np.ndim(item) == 1 for item in obs):
        return max(int(np.max(np.asarray(item))) for item in obs if len(item))
    array = obs.detach().cpu().numpy() if type(obs).__module__.startswith("torch") else np.asarray(obs)
    if array.size == 0:
        raise ValueError("obs is empty; need at least one symbol")
    return int(array.max())


def casino() -> HMM:
    """The occasionally dishonest casino (Durbin, Eddy, Krogh & Mitchison 1998, §3.2).

    States: 0 = fair, 1 = loaded. Symbols 0..5 are die faces 1..6. The fair die
    is uniform; the loaded die shows 6 with probability 1/2 and 1..5 with 1/10
    each; fair→loaded 0.05, loaded→fair 0.10. The start distribution is the
    chain's stationary distribution (2/3, 1/3).
    """
    return HMM(
        start=[2 / 3, 1 / 3],
        transition=[[0.95, 0.05], [0.10, 0.90]],
        emission=[[1 / 6] * 6, [0.1] * 5 + [0.5]],
    )
