"""The ``birnn`` command line: thin shells over the library (click).

Every sub-command lives in its own module, imported when the command is used (``_COMMANDS``).
A usage error (bad option, bad value, unreadable file, invalid data) prints
one line and exits with code 2; nothing here holds logic a Python user could
not reach.
"""

from __future__ import annotations

import sys
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code (2 for usage errors, 1 for a diverged training)."""
    try:
        app.main(args=argv, prog_name="birnn", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else _one_line(exc))
        return 0
    except click.UsageError as exc:
        click.echo(f"birnn: error: {_one_line(click.ClickException(exc.format_message()))}", err=True)
        return 2
    except (UsageError, ValueError, TypeError, OSError) as exc:  # includes CheckpointError
        click.echo(f"birnn: error: {_one_line(exc)}", err=True)
        return 2
    except RuntimeError as exc:
        if type(exc).__name__ != "TrainingDiverged":  # named, not imported: `predict` may run without torch
            raise
        click.echo(f"birnn: training diverged: {_one_line(exc)}", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("birnn: aborted", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
