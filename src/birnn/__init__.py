"""birnn: bidirectional recurrent neural networks, from the HMM forward–backward
algorithm to trained BiLSTM taggers.

Sub-packages, each importing only from those below it:

- ``birnn.cli``          the ``birnn`` command line (thin)
- ``birnn.serve``        inference: ``birnn.load(run_dir).predict(...)``, ONNX export, onnxruntime
- ``birnn.experiments``  runs that train and compare models (the demo, The Time Machine, taggers on files)
- ``birnn.train``        trainer, checkpoints, distributed set-up, ``load_task(run_dir)``
- ``birnn.tasks``        tagging, language modelling, cloze
- ``birnn.reference``    the NumPy engine with hand-derived backpropagation
- ``birnn.nn``           the PyTorch engine: ``Bidirectional``, ``BiRNN``, ``reverse_padded``, ``CRF``
- ``birnn.hmm``          discrete HMMs: sampling, filtering, smoothing, Viterbi, Baum–Welch
- ``birnn.dp``           chain dynamic programming in log space (forward, backward, Viterbi)
- ``birnn.data``         corpora, vocabularies, batching
- ``birnn.spec``         facts both engines share (cells, merges, parameter names, validation, masks)
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # `import birnn` loads no module: the command line reaches its Ctrl-C handler at once
    from typing import Any

__version__ = "0.1.0"


def load(run_dir: Any, which: str = "best", batch_size: int = 256, threads: int | None = None,
         device: str = "auto", engine: str = "torch") -> Any:
    """The trained model of a run directory, ready to predict (``birnn.serve``).

    engine "torch": a ``Predictor`` on ``device`` (auto | cpu | cuda | cuda:N); "onnx": an
    ``OnnxPredictor`` over the ``.onnx`` file (or directory holding one) that ``birnn export``
    wrote, run by onnxruntime without torch (``which`` and ``device`` do not apply).
    threads: intra-op threads (None: the engine's default).
    """
    if engine == "onnx":
        from birnn.serve.onnx_predictor import OnnxPredictor

        return OnnxPredictor(run_dir, batch_size, threads)
    if engine != "torch":
        raise ValueError(f"engine must be 'torch' or 'onnx'; got {engine!r}")
    from birnn.serve.predictor import load as _load

    return _load(run_dir, which, batch_size, threads, device)
