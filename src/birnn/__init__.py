"""birnn: bidirectional recurrent neural networks, from the HMM forward–backward
algorithm to trained BiLSTM taggers.

Sub-packages, each importing only from those below it:

- ``birnn.cli``          the ``birnn`` command line (thin)
- ``birnn.serve``        inference: ``birnn.load(run_dir).predict(...)``
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

from typing import Any

__version__ = "0.1.0"


def load(run_dir: Any, which: str = "best", batch_size: int = 256) -> Any:
    """``birnn.serve.load``: the trained model of a run directory, ready to predict."""
    from birnn.serve import load as _load

    return _load(run_dir, which, batch_size)
