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
in any language needs to feed the graph and read its outputs. With ``quantize="int8"`` both
graphs are then rewritten with int8 weights (``serve.onnx_quantize``) and the JSON's
``quantization`` records what was quantised and how far each output moved on the example.
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


def export(task: Any, path: str | Path, check: bool = True, quantize: str | None = None) -> OnnxGraph:
    """Write ``task`` to ``path`` (.onnx), its character graph and its JSON beside it; with ``check``,
    run each file in onnxruntime on the example batch and raise ExportMismatch if it differs from torch;
    ``quantize="int8"``: then store the weights as int8 (checked float graphs first)."""
    path = Path(path)
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8'; got {quantize!r}")
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
    if check or quantize:
        for file, part, expected in written:
            _check(file, part, expected)
    if quantize:
        config = config | {"quantization": _quantize(written)}
    write_atomic(config_path(path), json.dumps(config, ensure_ascii=False, indent=1).encode())
    return graph


def _quantize(written: list[tuple[Path, OnnxGraph, list[np.ndarray]]]) -> dict[str, Any]:
    """Each written file rewritten with int8 weights; the JSON's record: per file the op types
    quantised and each output's gap to torch on the example (``onnx_quantize.output_gaps``)."""
    from birnn.serve.onnx_quantize import output_gaps, quantize_int8

    files = {}
    for file, part, expected in written:
        ops = quantize_int8(file)
        files[file.name] = {"ops": ops, "example_gaps": output_gaps(part.outputs, expected, _run(file, part))}
    return {"weights": "int8", "method": "onnxruntime dynamic quantisation", "files": files}


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


def _run(path: Path, graph: OnnxGraph) -> list[np.ndarray]:
    """onnxruntime's outputs of the file ``path`` on the graph's example inputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: value.cpu().numpy() for name, value in graph.inputs.items()}
    return list(session.run(list(graph.outputs), feeds))


def _check(path: Path, graph: OnnxGraph, expected: list[np.ndarray]) -> None:
    for name, want, got in zip(graph.outputs, expected, _run(path, graph), strict=True):
        gap = float(np.abs(want.astype(np.float64) - got.astype(np.float64)).max()) if want.size else 0.0
        if gap > TOLERANCE:
            raise ExportMismatch(f"{path}: onnxruntime's {name!r} differs from torch's by {gap:.3g} on the example")
