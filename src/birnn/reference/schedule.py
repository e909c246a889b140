"""How the directions of a layer share the machine: one thread each, or in lockstep on one.

The two directions of a bidirectional layer do not meet until the merge, so
their loops can run at the same time. NumPy gives two ways to use that:

- ``"threads"``: each direction runs its own loop (D = 1) on its own thread,
  with BLAS limited to one thread. NumPy releases the GIL inside every ufunc and
  matrix product, so the two loops overlap; the elementwise work (single-threaded
  in NumPy) then uses both cores too, not only the matrix products.
  In backpropagation through time the two threads take turns for the small
  elementwise calls of a step (the lock ``elementwise_turn`` returns) and run
  their matrix products outside it, so one thread's product overlaps the
  other's elementwise work; otherwise the threads hand Python's GIL to each
  other at every one of a step's 15–20 small calls, and each handoff costs
  microseconds. The forward pass does not take turns: its elementwise part
  (σ, tanh) takes as long as the product or longer, and turns would serialise
  it. Measured, LSTM train step at B=64 T=50 I=100 H=128: turns in BPTT only
  44.8 ms (float32) and 93.1 ms (float64); no turns 47.5 and 93.8; turns in
  both passes 45.7 and 101.3 (and float64 inference 20% slower).
- ``"lockstep"``: one thread advances both directions together (D = 2), one
  batched matrix product per step for both (``layer.directions_forward``):
  half the Python overhead per step, best on one core. Directions of
  different sizes cannot share a batched product and run one after the other.

Measured (float32, LSTM layer forward + BPTT, B=32 T=35 I=512 H=256 and B=64
T=50 I=100 H=128): on 2 cores "threads" takes 0.80–0.93× the time of
"lockstep" with a 2-thread BLAS; on 1 core "lockstep" is 0.94–1.07× of "threads".
``default_schedule`` therefore picks "threads" when at least two CPUs are usable.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import TypeVar

SCHEDULES = ("threads", "lockstep")
Result = TypeVar("Result")
_THREADED = threading.Lock()
_ELEMENTWISE = threading.Lock()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_schedule() -> str:
    """ "threads" with two or more usable CPUs, else "lockstep"."""
    return "threads" if usable_cpus() >= 2 else "lockstep"


def check_schedule(schedule: str | None) -> str:
    """None -> ``default_schedule()``; a name from ``SCHEDULES`` unchanged; anything else a ValueError."""
    if schedule is None:
        return default_schedule()
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be None or one of {SCHEDULES}; got {schedule!r}")
    return schedule


def elementwise_turn(schedule: str) -> AbstractContextManager:
    """What a direction holds around a BPTT step's elementwise parts: a lock shared by the threads under "threads"."""
    return _ELEMENTWISE if schedule == "threads" else nullcontext()


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="birnn-direction")


@cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def run_jobs(schedule: str, jobs: Sequence[Callable[[], Result]]) -> list[Result]:
    """Run independent jobs: concurrently under "threads" (BLAS on one thread each), else in order."""
    if schedule != "threads" or len(jobs) < 2:
        return [job() for job in jobs]
    with _THREADED, _blas().limit(limits=1, user_api="blas"):  # one threaded run at a time: the limit is global
        futures = [_pool().submit(job) for job in jobs]
        return [future.result() for future in futures]
