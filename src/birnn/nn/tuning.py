"""Kernel choice by measurement: time the correct kernels once per configuration, keep the fastest.

The first call with a new configuration ``Key`` (cell, sizes, layers, dtype,
training or inference, equal or varying lengths, a power-of-two bucket of B and
T, torch's thread count) runs every candidate kernel the caller hands in — only
kernels that are correct for that call — in alternating rounds within a time
budget (``BUDGET`` seconds; a candidate not reached before it is spent stays
unmeasured, and the decision says so), and keeps the fastest:

- in memory, for the rest of the process;
- in ``$XDG_CACHE_HOME/birnn/kernels.json`` (default ``~/.cache/birnn``), under
  this machine's CPU model, torch version and thread count, for later processes.
  The file is written atomically (a temporary file renamed over it); a damaged
  file is ignored with a warning and rewritten; an unwritable one leaves the
  choice in memory only.

``BIRNN_KERNEL_TUNING=off`` (or 0, false, no) switches measuring off: the caller
falls back to its fixed rule. ``BIRNN_KERNEL_TUNING=remeasure`` ignores the file's
choices (made, say, while the machine was busy): each key is measured again once
in the process and the file rewritten with the new choice. A cached choice that is not among the call's
candidates is never used (it is measured again), so an edited or stale file
cannot select a kernel that is wrong for the call.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

ENVIRONMENT = "BIRNN_KERNEL_TUNING"
BUDGET = 1.0  # seconds of measuring per new key, after the first round
ROUNDS = 3  # timed rounds after the first (cold) one, budget permitting
MIN_SECONDS = 0.2  # and more rounds until this much is spent: calls of a few ms are noisy
FORMAT = 1

_OFF, _ON = ("off", "0", "false", "no"), ("on", "1", "true", "yes", "remeasure", "")
_log = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether ``$BIRNN_KERNEL_TUNING`` lets kernels be chosen by measurement (default: yes)."""
    value = os.environ.get(ENVIRONMENT, "on").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise ValueError(f"{ENVIRONMENT} must be one of {_ON[:-1] + _OFF}; got {os.environ[ENVIRONMENT]!r}")


def may_measure(x: torch.Tensor) -> bool:
    """Kernels are measured on CPU, when ``$BIRNN_KERNEL_TUNING`` allows it, outside compilation and tracing."""
    if x.device.type != "cpu" or torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    return enabled()


def remeasuring() -> bool:
    """Whether ``$BIRNN_KERNEL_TUNING`` is ``remeasure``: the cache file's choices are measured again."""
    return os.environ.get(ENVIRONMENT, "").strip().lower() == "remeasure"


def bucket(n: int) -> int:
    """The power of two at or above n (n ≥ 1): 1, 2, 4, 8, …"""
    return 1 << max(n - 1, 0).bit_length()


@dataclass(frozen=True)
class Key:
    """What decides which kernel is fastest for a call."""

    cell: str
    input_size: int
    hidden_size: int
    backward_hidden_size: int
    layers: int
    merge: str
    dtype: str
    training: bool
    input_grad: bool
    varying: bool
    batch: int  # bucket(B)
    steps: int  # bucket(T)
    threads: int

    def text(self) -> str:
        """The cache file's key: ``lstm I=100 H=128/128 L=1 concat float32 train+dx varying B≤64 T≤64 threads=2``
        (``H=64 L=1 one-direction`` for one direction: ``backward_hidden_size`` 0)."""
        mode = ("train+dx" if self.input_grad else "train") if self.training else "infer"
        sizes = f"{self.hidden_size}" + (f"/{self.backward_hidden_size}" if self.backward_hidden_size else "")
        return (
            f"{self.cell} I={self.input_size} H={sizes} L={self.layers} "
            f"{self.merge} {self.dtype} {mode} {'varying' if self.varying else 'equal'} "
            f"B≤{self.batch} T≤{self.steps} threads={self.threads}"
        )


@dataclass(frozen=True)
class Decision:
    """The kernel chosen for a key, the best seconds measured per candidate, what measuring cost."""

    kernel: str
    times: dict[str, float]
    seconds: float
    source: str = "measured"  # or the cache file it was read from
    unmeasured: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """``hand-bptt 4.1 ms, per-direction 5.3 ms; measured in 0.84 s``."""
        times = ", ".join(f"{name} {1e3 * t:.2f} ms" for name, t in sorted(self.times.items(), key=lambda kv: kv[1]))
        origin = f"measured in {self.seconds:.2f} s" if self.source == "measured" else f"from {self.source}"
        skipped = f"; not measured (budget spent): {', '.join(self.unmeasured)}" if self.unmeasured else ""
        return f"{times}; {origin}{skipped}"


def measure(
    candidates: Sequence[str],
    step: Callable[[str], object],
    budget: float = BUDGET,
    clock: Callable[[], float] = time.perf_counter,
) -> Decision:
    """Time ``step(kernel)`` for each candidate and pick the fastest.

    A first round runs each candidate once, in the order given (the fixed rule's
    choice first), until ``budget`` seconds are spent; then ``ROUNDS`` more rounds,
    and more until ``MIN_SECONDS`` are spent, alternate the measured candidates while
    a whole round still fits in the budget. A candidate's time is its best call.

    When the very first call alone overruns the budget it is run once more and the
    budget counts from there: a process's first call also sets up torch's libraries,
    which is no measure of the kernel (the reported seconds include it).
    """
    if not candidates:
        raise ValueError("candidates must name at least one kernel; got none")
    began_all = start = clock()
    best: dict[str, float] = {}
    for name in candidates:
        if best and clock() - start > budget:
            break
        began = clock()
        step(name)
        best[name] = clock() - began
        if len(best) == 1 and best[name] > budget:
            start = began = clock()
            step(name)
            best[name] = min(best[name], clock() - began)
    rounds = 0
    while (rounds < ROUNDS or clock() - start < MIN_SECONDS) and clock() - start + sum(best.values()) <= budget:
        for name in best:
            began = clock()
            step(name)
            best[name] = min(best[name], clock() - began)
        rounds += 1
    chosen = min(best, key=best.__getitem__)
    unmeasured = tuple(name for name in candidates if name not in best)
    return Decision(chosen, best, clock() - began_all, "measured", unmeasured)


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/birnn/kernels.json``, ``~/.cache/birnn/kernels.json`` without it."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "birnn" / "kernels.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> str:
    """The cache file's outer key: CPU model, torch version, CPU capability and thread count."""
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{_cpu_model()} | torch {torch.__version__} | {capability} | {torch.get_num_threads()} threads"


def _read(path: Path) -> dict[str, dict[str, dict]]:
    """The machines of a cache file; {} when it is missing, and (with a warning) when it is damaged."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        warnings.warn(f"ignoring the kernel-tuning cache {path}: {error}", RuntimeWarning, stacklevel=3)
        return {}
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"expected a JSON object with format {FORMAT}")
        machines = document["machines"]
        if not isinstance(machines, dict) or not all(isinstance(v, dict) for v in machines.values()):
            raise ValueError("expected 'machines' to map each machine to its keys")
        return machines
    except (ValueError, KeyError) as error:
        warnings.warn(
            f"ignoring the damaged kernel-tuning cache {path} ({error}); it will be rewritten",
            RuntimeWarning,
            stacklevel=3,
        )
        return {}


def _entry(raw: object, source: str) -> Decision | None:
    """A Decision from one cache entry, None when the entry is not well formed."""
    if not isinstance(raw, dict):
        return None
    kernel, times, seconds = raw.get("kernel"), raw.get("times"), raw.get("seconds", 0.0)
    if not isinstance(kernel, str) or not isinstance(times, dict) or not isinstance(seconds, int | float):
        return None
    if not all(isinstance(k, str) and isinstance(v, int | float) for k, v in times.items()):
        return None
    return Decision(kernel, {k: float(v) for k, v in times.items()}, float(seconds), source)


class KernelCache:
    """Chosen kernels by key, in memory and in one JSON file shared by the processes of this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._memory: dict[str, Decision] | None = None
        self._warned = False

    def _load(self) -> dict[str, Decision]:
        if self._memory is None:
            entries = _read(self.path).get(machine(), {})
            decisions = ((key, _entry(raw, str(self.path))) for key, raw in entries.items())
            self._memory = {key: d for key, d in decisions if d is not None}
        return self._memory

    def get(self, key: Key) -> Decision | None:
        return self._load().get(key.text())

    def put(self, key: Key, decision: Decision) -> None:
        """Keep ``decision`` in memory and merge it into the file (re-read first: other processes write too)."""
        self._load()[key.text()] = decision
        machines = _read(self.path)
        entries = machines.setdefault(machine(), {})
        entries[key.text()] = {"kernel": decision.kernel, "times": decision.times, "seconds": decision.seconds}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".kernels.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as file:
                    json.dump({"format": FORMAT, "machines": machines}, file, indent=1, sort_keys=True)
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as error:
            if not self._warned:
                warnings.warn(
                    f"cannot write the kernel-tuning cache {self.path} ({error}); choices stay in memory",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._warned = True


_caches: dict[Path, KernelCache] = {}


def default_cache() -> KernelCache:
    """The process's cache for ``cache_path()`` (one per path, so a changed XDG_CACHE_HOME is followed)."""
    path = cache_path()
    if path not in _caches:
        _caches[path] = KernelCache(path)
    return _caches[path]


def choose(
    key: Key,
    candidates: Sequence[str],
    step: Callable[[str], object],
    cache: KernelCache | None = None,
    budget: float | None = None,
) -> Decision:
    """The cached decision for ``key`` when it names one of ``candidates``, else a new measurement (cached).

    candidates: the kernels correct for this call, the fixed rule's choice first;
    step(kernel): one call (a training step: forward and backward) with that kernel.
    """
    cache = default_cache() if cache is None else cache
    decision = cache.get(key)
    stale = decision is not None and decision.source != "measured" and remeasuring()  # read from the file
    if decision is not None and decision.kernel in candidates and not stale:
        return decision
    decision = measure(candidates, step, BUDGET if budget is None else budget)
    _log.info("kernel for %s: %s (%s)", key.text(), decision.kernel, decision.describe())
    cache.put(key, decision)
    return decision
