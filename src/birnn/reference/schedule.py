"""How the two directions of a layer share the CPU: one thread each, or one after the other.

The directions of a bidirectional layer do not meet until the merge, so the
layer hands them here as two independent jobs (calls of ``layer.direction_forward``
or ``layer.direction_backward``), and the math knows nothing of how they run:

- ``"threads"``: each direction on its own thread, with the BLAS library held to
  one thread meanwhile. NumPy releases Python's GIL inside its ufuncs and matrix
  products, so the two loops overlap, the elementwise work of the cells included,
  which NumPy itself would run on one core.
- ``"sequential"``: one direction after the other on the calling thread, BLAS
  using as many threads as it is configured to.

``default_schedule`` picks "threads" when the process may use two or more CPUs.
Both schedules run the same functions on the same arrays: the results are identical.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

SCHEDULES = ("threads", "sequential")
Result = TypeVar("Result")
_THREADED = threading.Lock()  # the BLAS thread limit is process-wide: one threaded run at a time


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_schedule() -> str:
    """ "threads" with two or more usable CPUs, else "sequential"."""
    return "threads" if usable_cpus() >= 2 else "sequential"


def check_schedule(schedule: str | None) -> str:
    """None -> ``default_schedule()``; a name from ``SCHEDULES`` unchanged; anything else a ValueError."""
    if schedule is None:
        return default_schedule()
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be None or one of {SCHEDULES}; got {schedule!r}")
    return schedule


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="birnn-direction")


@cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def run_directions(schedule: str, jobs: Sequence[Callable[[], Result]]) -> list[Result]:
    """Run independent jobs and return their results in order: concurrently under "threads", else in turn."""
    if schedule != "threads" or len(jobs) < 2:
        return [job() for job in jobs]
    with _THREADED, _blas().limit(limits=1, user_api="blas"):
        futures = [_pool().submit(job) for job in jobs]
        return [future.result() for future in futures]
