"""The ``birnn`` command line: thin shells over the library (click).

Every sub-command lives in its own module and is registered in ``_register``.
A usage error (bad option, bad value, unreadable file, invalid data) prints
one line and exits with code 2; nothing here holds logic a Python user could
not reach.
"""

from __future__ import annotations

import sys

import click


@click.group(
    name="birnn",
    help="Bidirectional recurrent networks: HMMs, BiRNN encoders and taggers.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def app() -> None:
    pass


class UsageError(Exception):
    """A user mistake the CLI reports in one line with exit code 2."""


def _register() -> None:
    if app.commands:
        return
    from birnn.cli import bilm, demo, hmm, language, predict, train

    app.add_command(demo.demo_command, "demo")
    app.add_command(hmm.group, "hmm")
    app.add_command(train.train_group, "train")
    app.add_command(train.evaluate_command, "evaluate")
    app.add_command(predict.predict_command, "predict")
    language.register(train.train_group, app)
    train.train_group.add_command(bilm.bilm_command, "bilm")
    app.add_command(bilm.embed_command, "embed")
    from birnn.cli.classify import classify_command
    train.train_group.add_command(classify_command, "classify")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code (2 for usage errors, 1 for a diverged training)."""
    _register()
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
