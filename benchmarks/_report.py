"""Write a benchmark's own section of ``docs/performance.md``: what it printed and where it ran.

Each ``bench_*.py`` tees what it prints and, at the end, replaces the lines between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (appended when missing) with

- the date, the CPU model (``/proc/cpuinfo``) and the cores this process may use;
- Python, torch, NumPy and the peers' versions;
- the BLAS kernels in use: each BLAS library threadpoolctl finds (internal API,
  version, architecture or core name, threads), torch's own BLAS, CPU capability
  and threads, and ``OPENBLAS_CORETYPE`` when set;
- the printed output itself (a leading ``# title`` line becomes plain text).

Usage in a benchmark::

    add_option(parser)                  # --no-report
    args = parser.parse_args()
    recording = Recording()             # tees sys.stdout from here on
    ...                                 # print the table as before
    finish(args, "bench_hmm", recording, peers=("hmmlearn", "numba"))

``--no-report`` and ``--quick`` (a partial table) leave the file as it is; the table
is printed either way. Everything outside the markers is left untouched.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import sys
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TextIO

PERFORMANCE = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def add_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-report`` (print only) and ``--report PATH`` (the document to update)."""
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="print the table only; leave docs/performance.md as it is (--quick never writes it)",
    )
    parser.add_argument("--report", type=Path, default=PERFORMANCE, help="markdown file whose section to replace")


class Recording:
    """Tee of ``sys.stdout`` from construction until ``stop()``: prints as before and keeps a copy."""

    def __init__(self) -> None:
        self._stdout: TextIO = sys.stdout
        self._parts: list[str] = []
        sys.stdout = self  # type: ignore[assignment]

    def write(self, text: str) -> int:
        self._parts.append(text)
        return self._stdout.write(text)

    def flush(self) -> None:
        self._stdout.flush()

    def isatty(self) -> bool:  # no terminal colours in the recorded copy
        return False

    def __getattr__(self, name: str) -> object:  # encoding, fileno, …: the real stream's
        return getattr(self._stdout, name)

    def stop(self) -> str:
        """Restore ``sys.stdout`` (idempotent) and return everything printed meanwhile."""
        if sys.stdout is self:
            sys.stdout = self._stdout
        return "".join(self._parts)


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cores() -> str:
    """Cores this process may run on, of how many the machine has."""
    total = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = total
    return f"{usable} cores usable (of {total})"


def versions(peers: Iterable[str] = ()) -> str:
    """``Python 3.11.9, torch 2.13.0, numpy 2.3.1, hmmlearn 0.3.3, …``; a missing peer says so."""
    parts = [f"Python {platform.python_version()}"]
    for name in ("torch", "numpy", *peers):
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def blas() -> list[str]:
    """One line per BLAS in use: threadpoolctl's libraries, then torch's build and threads."""
    lines = []
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if lib.get("user_api") != "blas":
                continue
            kernel = lib.get("architecture") or lib.get("corename") or lib.get("threading_layer") or "?"
            lines.append(
                f"BLAS (threadpoolctl): {lib.get('internal_api')} {lib.get('version')} ({kernel}, "
                f"{lib.get('num_threads')} threads, `{Path(lib.get('filepath', '')).name}`)"
            )
    except ImportError:
        lines.append("BLAS: unknown (threadpoolctl not installed)")
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        capability = torch.backends.cpu.get_cpu_capability()
        lines.append(
            f"torch's BLAS: {found.group(1) if found else 'unknown'}, CPU capability {capability}, "
            f"{torch.get_num_threads()} threads"
        )
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    if coretype:
        lines.append(f"`OPENBLAS_CORETYPE={coretype}`")
    return lines


def environment(peers: Iterable[str] = ()) -> str:
    """The markdown lines that head a section: date, machine, versions, BLAS."""
    lines = [
        f"- Measured {date.today().isoformat()} on {cpu_model()}, {cores()}",
        f"- {versions(peers)}",
        *(f"- {line}" for line in blas()),
    ]
    return "\n".join(lines)


def _plain(printed: str) -> str:
    """The printed output as a section body: a ``# title`` line becomes plain text, no trailing blanks."""
    lines = printed.rstrip().splitlines()
    return "\n".join(line[2:] if line.startswith("# ") else line for line in lines)


def replace_section(document: str, name: str, body: str) -> str:
    """``document`` with the text between ``name``'s markers replaced by ``body`` (appended when absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    i, j = document.find(start), document.find(end)
    if i < 0 and j < 0:
        return document.rstrip() + f"\n\n{block}\n"
    if i < 0 or j < i:
        raise ValueError(f"{name}: expected {start!r} before {end!r}; found only one of them, or in that order")
    return document[:i] + block + document[j + len(end) :]


def write_section(name: str, printed: str, peers: Iterable[str] = (), path: Path = PERFORMANCE) -> None:
    """Replace ``name``'s section of ``path`` with the environment and ``printed``; atomic rename."""
    body = f"{environment(peers)}\n\n{_plain(printed)}"
    document = path.read_text() if path.exists() else "# Performance\n"
    updated = replace_section(document, name, body)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(updated)
    temporary.replace(path)
    print(f"{name}: wrote its section of {path}", file=sys.stderr)


def finish(args: argparse.Namespace, name: str, recording: Recording, peers: Iterable[str] = ()) -> None:
    """Stop the recording and, unless ``--no-report`` or ``--quick``, write ``name``'s section."""
    printed = recording.stop()
    if args.no_report or getattr(args, "quick", False):
        print(f"{name}: {args.report} left as it is (--no-report or --quick)", file=sys.stderr)
        return
    write_section(name, printed, peers, args.report)
