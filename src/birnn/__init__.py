"""birnn: bidirectional recurrent neural networks, from the HMM forward–backward
algorithm to trained BiLSTM taggers.

Sub-packages (imports only point down the list):

- ``birnn.cli``        the ``birnn`` command line (thin)
- ``birnn.train``      trainer, checkpoints, distributed set-up
- ``birnn.tasks``      tagging, language modelling, cloze, classification
- ``birnn.nn``         the PyTorch engine: ``Bidirectional``, ``BiRNN``, ``reverse_padded``
- ``birnn.reference``  the NumPy engine with hand-derived backpropagation
- ``birnn.hmm``        discrete HMMs: sampling, filtering, smoothing, Viterbi, Baum–Welch
- ``birnn.dp``         chain dynamic programming in log space (forward, backward, Viterbi)
- ``birnn.data``       corpora, vocabularies, batching
"""

__version__ = "0.1.0"
