"""The PyTorch engine: bidirectional layers correct on padded batches and as fast as torch's kernels.

- ``reverse_padded(x, lengths)``: reverse each valid prefix, keep padding in place.
- ``Recurrent(cell)``: any cell ``(x_t, state) -> state`` as a sequence module with lengths.
- ``Bidirectional(forward, backward=None, merge="concat")``: two directions, possibly different.
- ``BiRNN(...)``: a stack with torch's parameter names; its kernel is chosen by measurement (``tuning``).
- ``CRF(num_tags, allowed)``: a linear-chain CRF on ``birnn.dp`` (NLL, Viterbi, n-best, true marginals).
- ``CharBiLSTM``, ``CharCNN``: one vector per word from its characters, for all words of a batch at once.
- ``LSTMState(h, c)``: an LSTM's final state, a pair ``nn.LSTM`` takes as ``hx``.
"""

from birnn.nn.bidirectional import Bidirectional, BiOutput, Final
from birnn.nn.birnn import BiRNN
from birnn.nn.chars import CharBiLSTM, CharCNN  # after BiRNN: the character encoders are built on it
from birnn.nn.crf import CRF
from birnn.nn.functional import reverse_padded
from birnn.nn.kernels import LSTMState
from birnn.nn.recurrent import Recurrent
from birnn.spec import padding_mask

__all__ = [
    "BiOutput",
    "BiRNN",
    "Bidirectional",
    "CRF",
    "CharBiLSTM",
    "CharCNN",
    "Final",
    "LSTMState",
    "Recurrent",
    "padding_mask",
    "reverse_padded",
]
