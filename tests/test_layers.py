"""The package's shape: imports only point down the declared layers, the CLI stays thin,
and every CLI default is its configuration dataclass's default."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import click
import pytest

from birnn.cli import app, main

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "birnn"

# lowest first; a module may import its own sub-package and any layer of lower rank
RANKS = {
    "spec": 0,
    "data": 1,
    "dp": 2,
    "hmm": 3,
    "nn": 3,
    "reference": 4,  # converts to and from birnn.nn
    "tasks": 5,
    "train": 6,
    "experiments": 7,
    "serve": 8,
    "cli": 9,
}


def _layer(module_path: Path) -> str | None:
    parts = module_path.relative_to(PACKAGE).parts
    if len(parts) == 1 and parts[0] == "__init__.py":
        return None  # the package root is the front door: it may reach everything (lazily)
    return parts[0].removesuffix(".py")


def _imported_layers(tree: ast.AST, module_path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{module_path}:{node.lineno}: relative import; use absolute birnn imports")
            names = [node.module] + (
                [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "birnn" else []
            )
        for name in names:
            parts = name.split(".")
            if parts[0] == "birnn" and len(parts) > 1 and parts[1] in RANKS:
                found.append((node.lineno, parts[1]))
    return found


def test_every_module_belongs_to_a_declared_layer():
    layers = {_layer(path) for path in PACKAGE.rglob("*.py")} - {None}
    assert layers <= set(RANKS), f"undeclared layers: {sorted(layers - set(RANKS))}"


def test_imports_only_point_down():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        if layer is None:
            continue
        for line, target in _imported_layers(ast.parse(path.read_text()), path):
            if target != layer and RANKS[target] >= RANKS[layer]:
                violations.append(f"{path.relative_to(PACKAGE)}:{line}: {layer} imports {target}")
    assert not violations, "\n".join(violations)


def test_the_import_checker_sees_upward_imports(tmp_path):
    """The checker itself can fail: an upward import inside a function is caught."""
    source = "def f():\n    from birnn.train import Trainer\n"
    fake = PACKAGE / "tasks" / "fake.py"
    found = _imported_layers(ast.parse(source), fake)
    assert found == [(2, "train")] and RANKS["train"] > RANKS[_layer(fake)]


def _commands(group: click.Group, prefix: str = ""):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_cli_commands_are_thin():
    main(["--help"])
    long = []
    for path in (PACKAGE / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_command"):
                lines = node.end_lineno - node.lineno + 1
                if lines > 25:
                    long.append(f"{path.name}:{node.name} has {lines} lines")
    assert not long, long


def _field_values(config, found=None) -> dict[str, list]:
    found = {} if found is None else found
    for field in fields(config):
        value = getattr(config, field.name)
        if is_dataclass(value):
            _field_values(value, found)
        else:
            found.setdefault(field.name, []).append(value)
    return found


def test_cli_defaults_are_the_dataclass_defaults():
    from pathlib import Path as P

    from birnn.experiments.demo import DemoConfig
    from birnn.experiments.tagging import TagRun
    from birnn.experiments.timemachine import ClozeRun, LMRun

    configs = {
        "demo": DemoConfig(),
        "train tag": TagRun(train_file=P("x")),
        "evaluate": TagRun(train_file=P("x")),
        "train lm": LMRun(),
        "train cloze": ClozeRun(),
    }
    main(["--help"])
    checked = 0
    for name, command in _commands(app):
        if name not in configs:
            continue
        values = _field_values(configs[name])
        context = click.Context(command)
        for parameter in command.params:
            default = parameter.get_default(context, call=False)
            unset = default is None or type(default).__name__ == "Sentinel"  # click 8.2 marks "no default"
            if isinstance(parameter, click.Option) and parameter.name in values and not unset:
                assert default in values[parameter.name], (name, parameter.name, default)
                checked += 1
    assert checked >= 30


def test_a_redirected_demo_log_has_one_line_per_epoch(tmp_path):
    """No progress bars when stderr is not a terminal: `birnn demo > log 2>&1` stays readable."""
    log = tmp_path / "log"
    args = ["demo", "--epochs", "3", "--train-size", "1500", "--length", "20", "--out", str(tmp_path / "out")]
    with log.open("wb") as handle:
        done = subprocess.run([sys.executable, "-m", "birnn.cli", *args], stdout=handle, stderr=handle, check=False)
    text = log.read_bytes().decode()
    assert done.returncode == 0, text
    lines = text.replace("\r", "\n").splitlines()
    assert len(lines) < 30 and sum("epoch" in line for line in lines) == 6, text


@pytest.mark.parametrize("bad", [["train", "lm", "--lr", "inf"], ["train", "tag", "--train", "x", "--lr", "nan"]])
def test_non_finite_settings_are_refused_in_one_line(bad, capsys):
    assert main(bad) == 2
    assert capsys.readouterr().err.startswith("birnn: error:")
