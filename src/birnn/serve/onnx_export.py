"""``export(task, path)``: a trained task as an ONNX file plus the JSON that makes it usable without birnn.

The task's ``OnnxGraph`` (``birnn.tasks.exportable``) is traced by torch's TorchScript-based
exporter (``torch.onnx.export(..., dynamo=False)``): it turns packed sequences into ONNX RNN nodes
with ``sequence_lens`` (exact on padded batches, both directions) and TorchScript loops into ONNX
``Loop`` nodes; the dynamo exporter has no packed sequences. The written file is then run in
onnxruntime on the example batch and compared with torch before ``export`` returns.

Files: ``path`` (the graph), for a network that reads characters ``model.chars.onnx`` beside it
(the character graph: each distinct word's vector, ``tasks.exportable``), and
``path.with_suffix(".json")``: format and version, kind, input and output names in order (and
the character graph's, with its file name, under ``char_encoder``), vocabularies (``words``,
``chars``, ``tags`` as id -> string lists, id 0 padding, 1 unknown), ``lowercase``,
``max_word_length``, the word-shape rules, the tag ``labels`` and schemes — everything a program
in any language needs to feed the graph and read its outputs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from birnn.tasks.exportable import OnnxGraph, onnx_graph
from birnn.train.checkpoint import write_atomic

OPSET = 17
TOLERANCE = 1e-4  # float32 on the example batch; the tests hold 1e-5 on many batches


class ExportMismatch(RuntimeError):
    """onnxruntime's outputs of the exported file differ from torch's."""


def config_path(onnx_path: str | Path) -> Path:
    """The JSON next to an ONNX file: ``model.onnx`` -> ``model.json``."""
    return Path(onnx_path).with_suffix(".json")


def char_graph_path(onnx_path: str | Path) -> Path:
    """The character graph next to an ONNX file: ``model.onnx`` -> ``model.chars.onnx``."""
    return Path(onnx_path).with_suffix(".chars.onnx")


def export(task: Any, path: str | Path, check: bool = True) -> OnnxGraph:
    """Write ``task`` to ``path`` (.onnx), its character graph and its JSON beside it; with ``check``,
    run each file in onnxruntime on the example batch and raise ExportMismatch if it differs from torch."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"the export file must end in .onnx; got {path}")
    if not path.parent.is_dir():
        raise OSError(f"cannot write {path}: no such directory {path.parent}")
    graph = onnx_graph(task)
    config = graph.config
    parts = [(path, graph)]
    if graph.chars is not None:
        parts.append((char_graph_path(path), graph.chars))
        config = config | {"char_encoder": config["char_encoder"] | {"file": char_graph_path(path).name}}
    written = [(file, part, _write(part, file)) for file, part in parts]
    write_atomic(config_path(path), json.dumps(config, ensure_ascii=False, indent=1).encode())
    if check:
        for file, part, expected in written:
            _check(file, part, expected)
    return graph


def _write(graph: OnnxGraph, path: Path) -> list[np.ndarray]:
    """Trace ``graph`` into ``path``; torch's outputs on the example inputs."""
    module = copy.deepcopy(graph.module).cpu().eval()
    inputs = tuple(value.cpu() for value in graph.inputs.values())
    with torch.no_grad(), warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")  # the tracer's notes on packed sequences and loops
        torch.onnx.export(module, inputs, str(path), input_names=list(graph.inputs), output_names=list(graph.outputs),
                          dynamic_axes=graph.axes, opset_version=OPSET, dynamo=False)
        outputs = module(*inputs)
    return [value.numpy() for value in ((outputs,) if isinstance(outputs, torch.Tensor) else outputs)]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null: the exporter's C++ side warns that it cannot infer the shapes
    of packed sequences, which the onnxruntime check after the export makes moot."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check(path: Path, graph: OnnxGraph, expected: list[np.ndarray]) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: value.cpu().numpy() for name, value in graph.inputs.items()}
    for name, want, got in zip(graph.outputs, expected, session.run(list(graph.outputs), feeds), strict=True):
        gap = float(np.abs(want.astype(np.float64) - got.astype(np.float64)).max()) if want.size else 0.0
        if gap > TOLERANCE:
            raise ExportMismatch(f"{path}: onnxruntime's {name!r} differs from torch's by {gap:.3g} on the example")
