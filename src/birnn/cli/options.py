"""Click options whose defaults are read from the configuration dataclasses (the only source of defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

FILE = click.Path(dir_okay=False, path_type=Path)
RUN = click.Path(file_okay=False, path_type=Path)
POSITIVE = click.IntRange(min=1)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)


def config_value(config: Any, path: str) -> Any:
    """``config_value(LMRun(), "train.epochs")`` -> the value at that dotted path."""
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def from_config(config: Any, path: str, *declarations: str, **settings: Any) -> Any:
    """An option named after the last part of ``path`` (``--batch-size`` for ``train.batch_size``)
    whose default is the value at ``path`` in ``config``."""
    name = path.split(".")[-1]
    declarations = declarations or (f"--{name.replace('_', '-')}",)
    default = config_value(config, path)
    if isinstance(default, bool) and "is_flag" not in settings:
        settings["is_flag"] = True
    return click.option(*declarations, name, default=default, show_default=True, **settings)


def preset_option(plain: Any, presets: dict[str, Any], path: str, *declarations: str, **settings: Any) -> Any:
    """An option with no default of its own: the run takes the value of ``plain`` or, with
    ``--preset NAME``, of ``presets[NAME]``; all are shown in the help."""
    name = path.split(".")[-1]
    declarations = declarations or (f"--{name.replace('_', '-')}",)
    if settings.get("is_flag") and "/" not in declarations[0]:
        declarations = (f"{declarations[0]}/--no-{declarations[0][2:]}", *declarations[1:])
        settings.pop("is_flag")
    values = "; ".join(f"{key}: {config_value(preset, path)}" for key, preset in presets.items())
    shown = f"[default: {config_value(plain, path)}; {values}]"
    settings["help"] = f"{settings.get('help', '')} {shown}".strip()
    return click.option(*declarations, name, default=None, **settings)


def one_line(row: dict[str, float], keys: tuple[str, ...] = ()) -> str:
    """``name value`` pairs of a metrics row, comma-separated, four decimals."""
    return ", ".join(f"{k} {v:.4f}" for k, v in row.items() if not keys or k in keys)
