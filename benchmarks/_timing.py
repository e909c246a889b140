"""Shared helpers of the benchmarks: best-of-n wall time and the machine description."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from datetime import date


def best_time(fn: Callable[..., object], *args: object, repeats: int = 3, budget: float = 5.0) -> float:
    """Best wall time of ``fn(*args)`` over up to ``repeats`` runs (fewer if one exceeds ``budget`` s)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        if elapsed > budget:
            break
    return best


def machine() -> str:
    """One line: date, CPU count, processor, Python and the main library versions."""
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    return (
        f"{date.today().isoformat()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"NumPy {numpy.__version__}, torch {torch.__version__}, {torch.get_num_threads()} torch threads"
    )
