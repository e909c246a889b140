"""The ``birnn`` command line: thin shells over the library (click), run by ``main``.

This module imports only the standard library, and only inside ``main``, so that the
interpreter reaches ``main``'s KeyboardInterrupt handler before anything slow: a Ctrl-C at
any moment from then on is one line and exit code 130, a SIGTERM exit code 143. While click,
torch and the command's modules are imported (``birnn.cli.commands``) both signals are held
and acted on once the imports are done, since an exception raised inside torch's C++
start-up aborts the process. The application itself, its registry of commands and its
error contract (one line, exit code 2) live in ``birnn.cli.commands``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType, ModuleType

__all__ = ["main"]


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is when it arrives so that a training stops as at Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def _stopped(exc: KeyboardInterrupt) -> int:
    """Ctrl-C (exit 130) or SIGTERM (exit 143) in one line, with what the training kept when it says."""
    terminated = isinstance(exc, _Terminated)
    text = str(exc).strip()
    detail = f": {text.splitlines()[0]}" if text else ""
    sys.stderr.write(f"birnn: {'terminated' if terminated else 'interrupted'}{detail}\n")
    sys.stderr.flush()
    return 143 if terminated else 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code (2 for usage errors, 1 for a diverged training,
    130 after Ctrl-C and 143 after SIGTERM, at any moment from start-up on)."""
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt as exc:  # from the first line on, while the modules load too
        return _stopped(exc)
    finally:
        _forget_interrupts()


def _forget_interrupts() -> None:
    """Make the returned code the exit code. CPython notes a KeyboardInterrupt that leaves code run
    by ``exec`` of a string (dataclasses and namedtuples are made so, e.g. while torch imports
    lazily), caught or not, and under ``python -m`` ends the process by SIGINT at exit instead of
    with ``sys.exit``'s code; every ``exec`` of a string clears that note first."""
    exec("")


def _main(arguments: list[str]) -> int:
    import signal
    import threading

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        commands = _load(arguments, in_main_thread)
        return int(commands.run(arguments))
    except BrokenPipeError:  # `birnn … | head`: the reader left; say nothing more
        import os

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return 141
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _load(arguments: list[str], in_main_thread: bool) -> ModuleType:
    """Import click and the named command's modules with SIGINT and SIGTERM held (not ignored:
    one that arrives is raised as KeyboardInterrupt or _Terminated once the imports are done)."""
    import signal

    arrived: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        arrived.append(signum)

    held = {}
    if in_main_thread:
        for number in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(number) is not signal.SIG_IGN:  # a background job ignores SIGINT: so do we
                held[number] = signal.signal(number, hold)
    try:
        from birnn.cli import commands

        commands.load(arguments)
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
    if arrived:
        raise _Terminated() if arrived[0] == signal.SIGTERM else KeyboardInterrupt()
    return commands


def __getattr__(name: str) -> object:
    """``birnn.cli.app`` and ``birnn.cli.UsageError`` (``birnn.cli.commands``), imported when first asked for."""
    if name not in ("app", "UsageError"):
        raise AttributeError(f"module 'birnn.cli' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module("birnn.cli.commands"), name)
