"""The PyTorch engine: bidirectional layers correct on padded batches and as fast as torch's kernels.

- ``reverse_padded(x, lengths)``: reverse each valid prefix, keep padding in place.
- ``Recurrent(cell)``: any cell ``(x_t, state) -> state`` as a sequence module with lengths.
- ``Bidirectional(forward, backward=None, merge="concat")``: two directions, possibly different.
- ``BiRNN(...)``: a stack with torch's parameter names and automatic fused-kernel choice.
"""

from birnn.nn.bidirectional import Bidirectional, BiOutput, Final
from birnn.nn.functional import padding_mask, reverse_padded
from birnn.nn.recurrent import Recurrent
from birnn.nn.stack import BiRNN

__all__ = ["BiOutput", "BiRNN", "Bidirectional", "Final", "Recurrent", "padding_mask", "reverse_padded"]
