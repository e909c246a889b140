"""Weights to and from PyTorch: ``nn.LSTM/GRU/RNN(bidirectional=True)`` and ``birnn.nn.BiRNN``.

Both use torch's parameter names, so conversion is a copy of the state dict;
torch is imported only here, and only when called.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _describe(module: Any) -> dict[str, Any]:
    from torch import nn

    from birnn.nn import BiRNN as TorchBiRNN

    if isinstance(module, TorchBiRNN):
        return {
            "cell": module.cell,
            "hidden_size": module.hidden_size,
            "backward_hidden_size": module.backward_hidden_size,
            "num_layers": module.num_layers,
            "merge": module.merge,
            "bias": module.bias,
            "input_size": module.input_size,
        }
    if isinstance(module, nn.RNNBase):
        if not module.bidirectional:
            raise ValueError(f"module must be bidirectional; got {type(module).__name__}(bidirectional=False)")
        if getattr(module, "proj_size", 0):
            raise ValueError("LSTMs with proj_size are not supported")
        cell = {"LSTM": "lstm", "GRU": "gru"}.get(module.mode, "rnn_tanh" if module.mode == "RNN_TANH" else "rnn_relu")
        return {
            "cell": cell,
            "hidden_size": module.hidden_size,
            "backward_hidden_size": module.hidden_size,
            "num_layers": module.num_layers,
            "merge": "concat",
            "bias": module.bias,
            "input_size": module.input_size,
        }
    raise TypeError(
        f"module must be nn.LSTM/nn.GRU/nn.RNN(bidirectional=True) or birnn.nn.BiRNN; got {type(module).__name__}"
    )


def from_torch(cls: type, module: Any, dtype: Any = np.float64) -> Any:
    """A NumPy BiRNN holding a copy of ``module``'s weights in ``dtype``."""
    config = _describe(module)
    model = cls(**config, dtype=dtype, seed=0)
    state = module.state_dict()
    if set(state) != set(model.params):
        raise ValueError(f"parameter names differ: torch has {sorted(state)}, expected {sorted(model.params)}")
    for name, value in state.items():
        model.params[name] = value.detach().cpu().numpy().astype(dtype)
    return model


def to_torch(model: Any) -> Any:
    """An equivalent ``birnn.nn.BiRNN`` (whose state dict also loads into torch's own RNNs)."""
    import torch

    from birnn.nn import BiRNN as TorchBiRNN

    module = TorchBiRNN(
        model.input_size,
        model.sizes[""],
        num_layers=model.num_layers,
        cell=model.cell,
        merge=model.merge,
        backward_hidden_size=model.sizes["_reverse"],
        bias=model.bias,
    ).to(torch.float64 if model.dtype == np.float64 else torch.float32)
    module.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in model.params.items()})
    return module
