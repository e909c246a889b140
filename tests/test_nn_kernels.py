"""birnn.nn hand-bptt kernel: gradcheck of the layer Function, parity with torch, plan, choice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from birnn.nn import BiRNN
from birnn.nn.bilayer import BiLayerFunction, make_plan
from birnn.spec import GATES
from nn_helpers import assert_same_gradients, torch_reference

DOUBLE = torch.float64


def test_plan_on_a_small_batch():
    plan = make_plan(torch.tensor([2, 3, 1]), batch=3, steps=3, device=torch.device("cpu"))
    assert plan.sizes == [3, 2, 1] and plan.order.tolist() == [1, 0, 2]
    # direction 0 reads (b, t) in step order; direction 1 reads (b, len_b - 1 - t)
    forward, backward = plan.rows.view(2, -1).tolist()
    assert forward == [3, 0, 6, 4, 1, 5]
    assert backward == [5, 1, 6, 4, 0, 3]
    assert plan.final.tolist() == [4, 5, 2]  # packed row of each sequence's last step


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_layer_function_passes_gradcheck(cell):
    torch.manual_seed(0)
    batch, steps, features, hidden = 3, 4, 2, 3
    gates = GATES[cell]
    lengths = torch.tensor([2, 4, 1])
    plan = make_plan(lengths, batch, steps, torch.device("cpu"))

    def leaf(*shape):
        return (0.5 * torch.randn(*shape, dtype=DOUBLE)).requires_grad_()

    x = leaf(batch, steps, features)
    h0, c0 = leaf(2, batch, hidden), leaf(2, batch, hidden)
    w_ih, w_hh = leaf(2, gates * hidden, features), leaf(2, gates * hidden, hidden)
    b_ih, b_hh = leaf(2, gates * hidden), leaf(2, gates * hidden)

    def layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        out, h, c = BiLayerFunction.apply(cell, plan, x, h0, c0 if cell == "lstm" else None, w_ih, w_hh, b_ih, b_hh)
        return (out, h, c) if cell == "lstm" else (out, h)

    assert torch.autograd.gradcheck(layer, (x, h0, c0, w_ih, w_hh, b_ih, b_hh), eps=1e-6, atol=1e-7)
    out = layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh)[0]
    assert out[0, 2:].abs().max() == 0 and out[2, 1:].abs().max() == 0  # zeros at padding


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("variable", [False, True])
def test_hand_bptt_parity_with_initial_states_and_input_gradient(cell, variable):
    torch.manual_seed(1)
    kind = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell, nn.RNN)
    extra = {"nonlinearity": "relu"} if cell == "rnn_relu" else {}
    reference = kind(4, 5, num_layers=2, bidirectional=True, batch_first=True, **extra).to(DOUBLE)
    ours = BiRNN(4, 5, num_layers=2, cell=cell).to(DOUBLE)
    ours.load_state_dict(reference.state_dict())
    ours.force_kernel = "hand-bptt"
    x = torch.randn(3, 6, 4, dtype=DOUBLE)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    lengths = torch.tensor([6, 2, 4]) if variable else None
    h0 = torch.randn(4, 3, 5, dtype=DOUBLE)
    c0 = torch.randn(4, 3, 5, dtype=DOUBLE)
    h0_ours, h0_theirs = h0.clone().requires_grad_(), h0.clone().requires_grad_()
    c0_ours, c0_theirs = c0.clone().requires_grad_(), c0.clone().requires_grad_()
    if cell == "lstm":
        initial_theirs = (h0_theirs, c0_theirs)
        initial_ours = ((h0_ours[0::2], c0_ours[0::2]), (h0_ours[1::2], c0_ours[1::2]))
    else:
        initial_theirs, initial_ours = h0_theirs, (h0_ours[0::2], h0_ours[1::2])
    module = reference if lengths is None else _packed(reference, lengths)
    expected, final = module(x_theirs, initial_theirs)
    result = ours(x_ours, lengths, initial_ours)
    assert ours.kernel == "hand-bptt"
    torch.testing.assert_close(result.output, expected, atol=1e-10, rtol=0)
    weights = torch.randn_like(expected)
    h_theirs = final[0] if cell == "lstm" else final
    h_ours = torch.stack(
        [
            result.final.fwd[0] if cell == "lstm" else result.final.fwd,
            result.final.bwd[0] if cell == "lstm" else result.final.bwd,
        ],
        dim=1,
    ).reshape(4, 3, 5)
    torch.testing.assert_close(h_ours, h_theirs, atol=1e-10, rtol=0)
    loss_theirs = (expected * weights).sum() + h_theirs.square().sum()
    loss_ours = (result.output * weights).sum() + h_ours.square().sum()
    if cell == "lstm":
        c_ours = torch.stack([result.final.fwd.c, result.final.bwd.c], dim=1).reshape(4, 3, 5)
        torch.testing.assert_close(c_ours, final[1], atol=1e-10, rtol=0)
        loss_theirs = loss_theirs + final[1].sum()
        loss_ours = loss_ours + c_ours.sum()
    loss_theirs.backward()
    loss_ours.backward()
    assert_same_gradients(ours, reference)
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, atol=1e-10, rtol=0)
    torch.testing.assert_close(h0_ours.grad, h0_theirs.grad, atol=1e-10, rtol=0)
    if cell == "lstm":
        torch.testing.assert_close(c0_ours.grad, c0_theirs.grad, atol=1e-10, rtol=0)
    if variable:  # padding gets no gradient
        assert x_ours.grad[1, 2:].abs().max() == 0


def _packed(module, lengths):
    def run(x, initial):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, final = module(packed, initial)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, final

    return run


def test_dropout_between_layers_matches_the_per_direction_path():
    model = BiRNN(3, 4, num_layers=3, cell="gru", dropout=0.5).to(DOUBLE)
    x, lengths = torch.randn(2, 5, 3, dtype=DOUBLE), torch.tensor([5, 3])
    results = []
    for kernel in ("hand-bptt", "per-direction"):  # the same dropout masks for the same seed
        model.force_kernel = kernel
        torch.manual_seed(7)
        output = model(x, lengths).output
        assert model.kernel == kernel
        output.square().sum().backward()
        results.append((output, [p.grad.clone() for p in model.parameters()]))
        model.zero_grad()
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-10, rtol=0)
    for ours, theirs in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)


def test_dropout_with_an_elementwise_merge():
    model = BiRNN(3, 4, num_layers=2, cell="lstm", dropout=0.5, merge="sum").to(DOUBLE)
    model.force_kernel = "hand-bptt"
    x, lengths = torch.randn(2, 5, 3, dtype=DOUBLE), torch.tensor([5, 3])
    train = model(x, lengths).output
    train.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    evaluated = model(x, lengths).output
    assert not torch.allclose(train, evaluated)
    model.force_kernel = "per-direction"
    torch.testing.assert_close(model(x, lengths).output, evaluated, atol=1e-10, rtol=0)


def test_hand_bptt_in_float32_matches_torch():
    torch.manual_seed(3)
    reference = nn.GRU(6, 8, bidirectional=True, batch_first=True)
    ours = BiRNN(6, 8, cell="gru")
    ours.load_state_dict(reference.state_dict())
    x, lengths = torch.randn(5, 9, 6), torch.tensor([9, 1, 4, 9, 7])
    expected, _ = torch_reference(reference, x, lengths)
    result = ours(x, lengths)
    assert ours.kernel == "hand-bptt"
    torch.testing.assert_close(result.output, expected, atol=1e-5, rtol=1e-5)


def test_forced_kernel_is_validated():
    model = BiRNN(3, 4, backward_hidden_size=5)
    model.force_kernel = "hand-bptt"
    with pytest.raises(ValueError, match="needs directions of equal size"):
        model(torch.randn(2, 5, 3))
    model.force_kernel = "cudnn"
    with pytest.raises(ValueError, match="force_kernel must be None or one of"):
        model(torch.randn(2, 5, 3))
