"""``quantize_int8(path)``: an exported graph rewritten with 8-bit integer weights (onnxruntime's
dynamic quantisation), for throughput where a small change of the outputs is acceptable.

Each weight matrix W of an LSTM or MatMul node is stored as int8 with one scale s = max|W| / 127
(W ≈ s · round(W / s)); activations are quantised per call from their observed range, the products
run in integer arithmetic (VNNI/AMX where the CPU has them) and are rescaled to float32. LSTM nodes
become ``com.microsoft.DynamicQuantizeLSTM``, MatMul nodes ``DynamicQuantizeMatMul``; GRU and Elman
nodes have no quantised kernel in onnxruntime and stay float32, as do embeddings and the CRF.
The rewritten file runs in onnxruntime only (the com.microsoft operators are its own).

The outputs are no longer torch's to 1e-5: ``output_gaps`` measures how far they moved on the
export's example batch, and ``birnn export --quantize int8`` writes those figures to the JSON.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

QUANTIZED_OPS = ("LSTM", "MatMul")


def quantize_int8(path: Path) -> list[str]:
    """Rewrite the ONNX file ``path`` in place with int8 weights; the op types it quantised (sorted)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    found = sorted({node.op_type for node in onnx.load(str(path)).graph.node} & set(QUANTIZED_OPS))
    if not found:
        return []
    descriptor, scratch = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(descriptor)
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to run a shape-inference pass first
    try:
        quantize_dynamic(path, scratch, op_types_to_quantize=list(found), weight_type=QuantType.QInt8)
        shutil.copymode(path, scratch)  # mkstemp's file is private to its owner
        os.replace(scratch, path)
    finally:
        logging.getLogger().setLevel(quiet)
        if os.path.exists(scratch):
            os.remove(scratch)
    return found


def output_gaps(names: tuple[str, ...], expected: list[np.ndarray], got: list[np.ndarray]) -> dict[str, float]:
    """Per output: the largest absolute difference for float outputs, the fraction of entries that
    differ for integer outputs (tag ids) — the quantised graph's ``got`` against torch's ``expected``."""
    gaps = {}
    for name, want, have in zip(names, expected, got, strict=True):
        if want.size == 0:
            gaps[name] = 0.0
        elif np.issubdtype(want.dtype, np.integer):
            gaps[name] = float(np.mean(want != have))
        else:
            gaps[name] = float(np.abs(want.astype(np.float64) - have.astype(np.float64)).max())
    return gaps
