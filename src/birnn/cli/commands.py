"""The click application behind ``birnn.cli.main``: the command registry and the error contract.

Every sub-command lives in its own module, imported when the command is used (``_COMMANDS``).
A usage error (bad option, bad value, unreadable file, invalid data) prints
one line and exits with code 2; nothing here holds logic a Python user could
not reach.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import import_module

import click


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
    "ensemble": _command("ensemble", "ensemble_command"),
    "generate": _command("language", "generate_command"),
    "fill": _command("language", "fill_command"),
    "embed": _command("bilm", "embed_command"),
}


def load(arguments: list[str]) -> None:
    """Import the modules of the command that ``arguments`` name (torch's among them), before it runs."""
    name = next((argument for argument in arguments if not argument.startswith("-")), None)
    if name in _COMMANDS:
        app.get_command(click.Context(app), name)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def run(arguments: list[str]) -> int:
    """Parse and run one command line; return its exit code (KeyboardInterrupt and BrokenPipeError
    go to the caller, ``birnn.cli.main``)."""
    try:  # what click's main does, without its turning KeyboardInterrupt into Abort after a blank line
        with app.make_context("birnn", arguments) as context:
            app.invoke(context)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else one_line(exc))
        return 0
    except click.UsageError as exc:
        click.echo(f"birnn: error: {one_line(click.ClickException(exc.format_message()))}", err=True)
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
        click.echo(f"birnn: error: {one_line(exc)}", err=True)
        return 2
    except (MemoryError, RuntimeError) as exc:
        memory = _out_of_memory(exc)
        if memory is not None:
            click.echo(memory, err=True)
            return 2
        if type(exc).__name__ != "TrainingDiverged":  # named, not imported: `predict` may run without torch
            raise
        click.echo(f"birnn: training diverged: {one_line(exc)}", err=True)
        return 1
    return 0
