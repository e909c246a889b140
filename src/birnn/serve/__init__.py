"""Inference: ``birnn.load(run_dir)`` -> a ``Predictor`` (torch) for whatever task the run trained;
``export(task, path)`` writes it as ONNX; ``OnnxPredictor(path)`` runs that file with onnxruntime
and NumPy only. Names are imported on first use, so the ONNX engine never imports torch."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from birnn.serve.onnx_export import export
    from birnn.serve.onnx_predictor import OnnxPredictor
    from birnn.serve.predictor import Predictor, load

_HOME = {"Predictor": "predictor", "load": "predictor", "export": "onnx_export", "OnnxPredictor": "onnx_predictor"}

__all__ = ["OnnxPredictor", "Predictor", "export", "load"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'birnn.serve' has no attribute {name!r}")
    return getattr(import_module(f"birnn.serve.{_HOME[name]}"), name)
