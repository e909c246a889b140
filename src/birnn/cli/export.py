"""`birnn export RUN --to model.onnx`: a trained model as ONNX, checked in onnxruntime, plus its JSON."""

from __future__ import annotations

from pathlib import Path

import click

from birnn.cli.options import RUN


@click.command("export")
@click.argument("run", type=RUN)
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .onnx file to write; its vocabularies and settings go to the .json beside it.")
@click.option("--which", default="best", show_default=True, type=click.Choice(["best", "checkpoint"]),
              help="The weights to export.")
def export_command(run: Path, target: Path, which: str) -> None:
    """Export the model of RUN (a tagger or cloze model) to ONNX; run it with `birnn predict --engine onnx`
    or any onnxruntime, no birnn needed (docs/deploy.md)."""
    from birnn.serve.onnx_export import char_graph_path, config_path, export
    from birnn.train import load_task

    graph = export(load_task(run, which), target)
    chars = f", {char_graph_path(target)}" if graph.chars is not None else ""
    click.echo(f"wrote {target}{chars} and {config_path(target)}")
