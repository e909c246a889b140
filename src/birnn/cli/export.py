"""`birnn export RUN --to model.onnx`: a trained model as ONNX, checked in onnxruntime, plus its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from birnn.cli.options import RUN


@click.command("export")
@click.argument("run", type=RUN)
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .onnx file to write; its vocabularies and settings go to the .json beside it.")
@click.option("--which", default="best", show_default=True, type=click.Choice(["best", "checkpoint"]),
              help="The weights to export.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Store the LSTM and linear weights as int8 (onnxruntime dynamic quantisation): faster, "
                   "outputs change slightly; the JSON records by how much on an example.")
def export_command(run: Path, target: Path, which: str, quantize: str | None) -> None:
    """Export the model of RUN (a tagger or cloze model) to ONNX; run it with `birnn predict --engine onnx`
    or any onnxruntime, no birnn needed (docs/deploy.md)."""
    from birnn.serve.onnx_export import char_graph_path, config_path, export
    from birnn.train import load_task

    graph = export(load_task(run, which), target, quantize=quantize)
    chars = f", {char_graph_path(target)}" if graph.chars is not None else ""
    click.echo(f"wrote {target}{chars} and {config_path(target)}")
    if quantize:
        record = json.loads(config_path(target).read_text(encoding="utf-8"))["quantization"]["files"]
        for name, entry in record.items():
            gaps = ", ".join(f"{output} {gap:.3g}" for output, gap in entry["example_gaps"].items())
            click.echo(f"{name}: int8 {', '.join(entry['ops']) or 'nothing (no LSTM or MatMul)'}; "
                       f"largest change on the example: {gaps}")
