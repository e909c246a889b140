"""The ``birnn`` command line: thin shells over the library (click).

Every sub-command lives in its own module, imported when the command is used (``_COMMANDS``).
A usage error (bad option, bad value, unreadable file, invalid data) prints
one line and exits with code 2; nothing here holds logic a Python user could
not reach.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from importlib import import_module
from typing import Any

try:
    import click
except KeyboardInterrupt:  # Ctrl-C while the command starts: one line, as at any later moment
    sys.stderr.write("birnn: interrupted\n")
    raise SystemExit(130) from None


class _LazyGroup(click.Group):
    """A group whose commands are imported when first named (``_COMMANDS``): ``birnn predict
    --engine onnx`` imports neither torch nor the training commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            self.add_command(_COMMANDS[cmd_name](), cmd_name)
        return self.commands.get(cmd_name)


@click.group(
    name="birnn",
    cls=_LazyGroup,
    help="Bidirectional recurrent networks: HMMs, BiRNN encoders and taggers.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def app() -> None:
    pass


class UsageError(Exception):
    """A user mistake the CLI reports in one line with exit code 2."""


def _command(module: str, name: str) -> Callable[[], click.Command]:
    return lambda: getattr(import_module(f"birnn.cli.{module}"), name)


def _register() -> click.Command:
    """The ``train`` group with every training command."""
    from birnn.cli import bilm, language, train

    language.register(train.train_group, app)
    train.train_group.add_command(bilm.bilm_command, "bilm")
    from birnn.cli.classify import classify_command
    train.train_group.add_command(classify_command, "classify")
    return train.train_group


_COMMANDS: dict[str, Callable[[], click.Command]] = {
    "demo": _command("demo", "demo_command"),
    "hmm": _command("hmm", "group"),
    "train": _register,
    "evaluate": _command("train", "evaluate_command"),
    "predict": _command("predict", "predict_command"),
    "export": _command("export", "export_command"),
    "generate": _command("language", "generate_command"),
    "fill": _command("language", "fill_command"),
    "embed": _command("bilm", "embed_command"),
}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is when it arrives so that a training stops as at Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


_ALLOCATION = re.compile(r"can't allocate memory: you tried to allocate (\d+) bytes")


def _out_of_memory(exc: BaseException) -> str | None:
    """The one line for an allocation that failed (NumPy's MemoryError, torch's allocator), else None."""
    found = _ALLOCATION.search(str(exc))
    if found is None and not isinstance(exc, MemoryError):
        return None
    from birnn.spec import available_memory, format_bytes

    asked = f" of {format_bytes(int(found.group(1)))}" if found else ""
    available = available_memory()
    free = f" ({format_bytes(available)} available)" if available is not None else ""
    return f"birnn: error: not enough memory for an allocation{asked}{free}; choose smaller sizes"


def _stopped(exc: KeyboardInterrupt) -> int:
    """Ctrl-C (exit 130) or SIGTERM (exit 143) in one line, with what the training kept when it says."""
    terminated = isinstance(exc, _Terminated)
    detail = _one_line(exc) if str(exc).strip() else ""
    click.echo(f"birnn: {'terminated' if terminated else 'interrupted'}{': ' + detail if detail else ''}", err=True)
    return 143 if terminated else 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code (2 for usage errors, 1 for a diverged training,
    130 after Ctrl-C and 143 after SIGTERM, at any moment from start-up on)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        return _run(argv)
    except KeyboardInterrupt as exc:  # also while the commands are imported, before click runs
        return _stopped(exc)
    except BrokenPipeError:  # `birnn … | head`: the reader left; say nothing more
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return 141
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:  # what click's main does, without its turning KeyboardInterrupt into Abort after a blank line
        with app.make_context("birnn", arguments) as context:
            app.invoke(context)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else _one_line(exc))
        return 0
    except click.UsageError as exc:
        click.echo(f"birnn: error: {_one_line(click.ClickException(exc.format_message()))}", err=True)
        return 2
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    except EOFError:
        click.echo("birnn: error: unexpected end of input", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("birnn: aborted", err=True)
        return 130
    except BrokenPipeError:
        raise
    except (UsageError, ValueError, TypeError, OSError) as exc:  # includes CheckpointError
        click.echo(f"birnn: error: {_one_line(exc)}", err=True)
        return 2
    except (MemoryError, RuntimeError) as exc:
        memory = _out_of_memory(exc)
        if memory is not None:
            click.echo(memory, err=True)
            return 2
        if type(exc).__name__ != "TrainingDiverged":  # named, not imported: `predict` may run without torch
            raise
        click.echo(f"birnn: training diverged: {_one_line(exc)}", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
