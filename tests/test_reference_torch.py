"""The NumPy engine against PyTorch autograd, after copying weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birnn.nn import BiRNN as TorchBiRNN
from birnn.reference import BiRNN
from nn_helpers import TORCH_CELLS, torch_reference


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("variable", [False, True])
def test_matches_torch_autograd(cell, variable):
    torch.manual_seed(0)
    module = TORCH_CELLS[cell](3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    model = BiRNN.from_torch(module)
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4]) if variable else None
    expected, _ = torch_reference(module, x, lengths)
    ours = model.forward(x.detach().numpy(), None if lengths is None else lengths.numpy())
    np.testing.assert_allclose(ours, expected.detach().numpy(), atol=1e-9, rtol=0)
    weights = torch.randn_like(expected)
    (expected * weights).sum().backward()
    dx, grads = model.backward(weights.numpy())
    np.testing.assert_allclose(dx, x.grad.numpy(), atol=1e-9, rtol=0)
    for name, parameter in module.named_parameters():
        np.testing.assert_allclose(grads[name], parameter.grad.numpy(), atol=1e-9, rtol=0, err_msg=name)


def test_round_trip_through_the_torch_engine_with_unequal_directions():
    model = BiRNN(3, 5, cell="lstm", backward_hidden_size=2, merge="concat", seed=3)
    module = model.to_torch()
    assert isinstance(module, TorchBiRNN) and module.backward_hidden_size == 2
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    lengths = np.array([5, 3])
    expected = module(torch.from_numpy(x), torch.from_numpy(lengths)).output.detach().numpy()
    np.testing.assert_allclose(model.forward(x, lengths), expected, atol=1e-12)
    again = BiRNN.from_torch(module)
    for name, value in model.params.items():
        np.testing.assert_array_equal(again.params[name], value)


def test_summary_matches_the_torch_engine():
    module = TorchBiRNN(3, 4, num_layers=2, cell="gru").double()
    model = BiRNN.from_torch(module)
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    lengths = np.array([5, 2])
    model.forward(x, lengths)
    expected = module(torch.from_numpy(x), torch.from_numpy(lengths)).summary.detach().numpy()
    np.testing.assert_allclose(model.summary(), expected, atol=1e-12)


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, birnn.reference; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_conversion_errors():
    with pytest.raises(ValueError, match="must be bidirectional"):
        BiRNN.from_torch(torch.nn.LSTM(3, 4, batch_first=True))
    with pytest.raises(TypeError, match="module must be"):
        BiRNN.from_torch(torch.nn.Linear(3, 4))
