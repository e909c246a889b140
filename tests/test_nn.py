"""birnn.nn: parity with torch, padding invariance, finals, heterogeneous directions, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from birnn.nn import Bidirectional, BiRNN, LSTMState, Recurrent, reverse_padded
from birnn.nn.birnn import KERNELS
from birnn.nn.functional import last_valid
from nn_helpers import (
    TORCH_CELLS,
    assert_same_gradients,
    assert_same_state,
    bidirectional_by_hand,
    torch_reference,
    valid_mask,
)

DOUBLE = torch.float64


def test_reverse_padded_on_arange():
    x = torch.arange(8.0).view(2, 4, 1)
    out = reverse_padded(x, torch.tensor([4, 2]))
    assert out.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    assert torch.equal(reverse_padded(out, torch.tensor([4, 2])), x)


def test_reverse_padded_validates_lengths():
    x = torch.arange(8.0).view(2, 4, 1)
    with pytest.raises(TypeError, match="lengths must hold integers; got dtype float32"):
        reverse_padded(x, torch.tensor([4.0, 2.0]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\), one length per sequence"):
        reverse_padded(x, torch.tensor([4, 2, 1]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=4\]; got min 0, max 2"):
        reverse_padded(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=4\]; got min 2, max 5"):
        reverse_padded(x, torch.tensor([5, 2]))
    assert reverse_padded(x, [4, 2]).squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]  # a list is fine


@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), extra=st.integers(0, 2))
def test_reverse_padded_is_an_involution(lengths, extra):
    x = torch.randn(len(lengths), max(lengths) + extra, 3)
    lens = torch.tensor(lengths)
    assert torch.equal(reverse_padded(reverse_padded(x, lens), lens), x)


def test_reverse_padded_without_gradients_matches_the_autograd_path():
    """Under no_grad (or for a tensor that needs none) the gather runs without an autograd node."""
    lens = torch.tensor([5, 2, 3])
    x = torch.randn(3, 5, 4, requires_grad=True)
    with_node = reverse_padded(x, lens)
    with torch.no_grad():
        plain = reverse_padded(x, lens)
    assert with_node.grad_fn is not None and plain.grad_fn is None
    assert torch.equal(plain, with_node) and torch.equal(reverse_padded(x.detach(), lens), with_node)
    (grad,) = torch.autograd.grad(with_node, x, torch.arange(60.0).view(3, 5, 4))
    assert torch.equal(grad, reverse_padded(torch.arange(60.0).view(3, 5, 4), lens))


@given(lengths=st.lists(st.integers(1, 6), min_size=2, max_size=4), extra=st.integers(0, 2))
def test_row_gathers_read_time_major_views_as_they_are(lengths, extra):
    """torch's batch_first RNN outputs are transposed (T, B, H) tensors: same values, gradients included."""
    lens = torch.tensor(lengths)
    steps = max(lengths) + extra
    time_major = torch.randn(steps, len(lengths), 3, dtype=DOUBLE, requires_grad=True)
    view = time_major.transpose(0, 1)  # (B, T, 3), not contiguous
    dense = view.detach().contiguous().requires_grad_()
    weights = torch.randn(len(lengths), steps, 3, dtype=DOUBLE)
    reversed_view, reversed_dense = reverse_padded(view, lens), reverse_padded(dense, lens)
    assert torch.equal(reversed_view, reversed_dense)
    (reversed_view * weights).sum().backward()
    (reversed_dense * weights).sum().backward()
    assert torch.equal(time_major.grad.transpose(0, 1), dense.grad)
    expected = torch.stack([dense[b, n - 1] for b, n in enumerate(lengths)])
    assert torch.equal(last_valid(view, lens), expected)


# the kernel BiRNN picks by itself for a float64 training call on CPU
AUTO_KERNEL = {
    ("lstm", False): "fused",
    ("lstm", True): "hand-bptt",
    ("gru", False): "hand-bptt",
    ("gru", True): "hand-bptt",
    ("rnn", False): "hand-bptt",
    ("rnn", True): "hand-bptt",
}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("variable", [False, True])
@pytest.mark.parametrize("kernel", [None, "hand-bptt", "per-direction", "fused"])
def test_parity_with_torch_outputs_and_gradients(cell, variable, kernel):
    torch.manual_seed(0)
    reference = TORCH_CELLS[cell](4, 5, num_layers=2, bidirectional=True, batch_first=True).to(DOUBLE)
    ours = BiRNN(4, 5, num_layers=2, cell=cell).to(DOUBLE)
    ours.load_state_dict(reference.state_dict())
    ours.force_kernel = kernel
    x = torch.randn(3, 7, 4, dtype=DOUBLE)
    lengths = torch.tensor([7, 3, 5]) if variable else None
    expected, h_n = torch_reference(reference, x, lengths)
    result = ours(x, lengths)
    if kernel is None:
        assert ours.kernel == AUTO_KERNEL[cell, variable], ours.explain()
    else:
        assert ours.kernel == ("fused-packed" if kernel == "fused" and variable else kernel)
    torch.testing.assert_close(result.output, expected, atol=1e-10, rtol=0)
    h_theirs = h_n[0] if cell == "lstm" else h_n
    torch.testing.assert_close(result.final.fwd[0] if cell == "lstm" else result.final.fwd, h_theirs[0::2])
    torch.testing.assert_close(result.final.bwd[0] if cell == "lstm" else result.final.bwd, h_theirs[1::2])
    weights = torch.randn_like(expected)
    loss_theirs, loss_ours = (expected * weights).sum(), (result.output * weights).sum()
    if cell == "lstm":  # the final cell states (recomputed on the padded path) and their gradients too
        torch.testing.assert_close(result.final.fwd.c, h_n[1][0::2], atol=1e-10, rtol=0)
        torch.testing.assert_close(result.final.bwd.c, h_n[1][1::2], atol=1e-10, rtol=0)
        loss_theirs = loss_theirs + h_n[1].sum()
        loss_ours = loss_ours + result.final.fwd.c.sum() + result.final.bwd.c.sum()
    loss_theirs.backward()
    loss_ours.backward()
    assert_same_gradients(ours, reference)


def test_state_dict_round_trip_with_torch():
    ours = BiRNN(3, 4, num_layers=2, cell="lstm")
    reference = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    reference.load_state_dict(ours.state_dict())
    again = BiRNN(3, 4, num_layers=2, cell="lstm")
    again.load_state_dict(reference.state_dict())
    for name, value in ours.state_dict().items():
        assert torch.equal(value, again.state_dict()[name])


def _bidirectional(cell: str, merge) -> nn.Module:
    module = TORCH_CELLS[cell](3, 4, batch_first=True)
    return Bidirectional(module, merge=merge)


@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    extra=st.integers(0, 2),
    merge=st.sampled_from(["concat", "sum", "mul", "ave"]),
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
    stack=st.booleans(),
)
def test_padding_invariance(lengths, extra, merge, cell, stack):
    torch.manual_seed(1)
    model = BiRNN(3, 4, num_layers=2, cell=cell, merge=merge) if stack else _bidirectional(cell, merge)
    model = model.to(DOUBLE)
    steps = max(lengths) + extra
    x = torch.randn(len(lengths), steps, 3, dtype=DOUBLE)
    lens = torch.tensor(lengths)
    noisy = x.clone()
    for b, n in enumerate(lengths):
        noisy[b, n:] = 1e3
    batch = model(noisy, lens)
    for b, n in enumerate(lengths):
        alone = model(x[b : b + 1, :n])
        torch.testing.assert_close(batch.output[b, :n], alone.output[0], atol=1e-10, rtol=0)
        torch.testing.assert_close(batch.summary[b], alone.summary[0], atol=1e-10, rtol=0)
        assert batch.output[b, n:].abs().max() == 0 if n < steps else True


def _step_loop(cell: nn.Module, x: torch.Tensor):
    state = None
    for t in range(x.shape[0]):
        state = cell(x[t : t + 1], state)
    return state


def test_final_and_summary_equal_a_hand_written_step_loop():
    torch.manual_seed(2)
    forward, backward = nn.LSTMCell(3, 4).to(DOUBLE), nn.LSTMCell(3, 4).to(DOUBLE)
    bi = Bidirectional(Recurrent(forward), Recurrent(backward))
    x = torch.randn(2, 6, 3, dtype=DOUBLE)
    lengths = torch.tensor([6, 4])
    out, (final_fwd, final_bwd) = bi(x, lengths)
    for b, n in enumerate([6, 4]):
        h_f, c_f = _step_loop(forward, x[b, :n])
        h_b, c_b = _step_loop(backward, x[b, :n].flip(0))
        torch.testing.assert_close(final_fwd[0][b], h_f[0])
        torch.testing.assert_close(final_fwd[1][b], c_f[0])
        torch.testing.assert_close(final_bwd[0][b], h_b[0])
        torch.testing.assert_close(bi(x, lengths).summary[b], torch.cat([h_f[0], h_b[0]]))
        # the backward half of out[:, -1] has seen one token: not the summary
        assert not torch.allclose(out[b, n - 1, 4:], h_b[0])


@pytest.mark.parametrize("grad", [False, True])
def test_fused_module_finals_match_the_cell_loop(grad):
    torch.manual_seed(3)
    lstm = nn.LSTM(3, 4, batch_first=True).to(DOUBLE)
    cell = nn.LSTMCell(3, 4).to(DOUBLE)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in lstm.state_dict().items()})
    bi = Bidirectional(lstm, lstm)
    x = torch.randn(2, 5, 3, dtype=DOUBLE)
    with torch.set_grad_enabled(grad):
        _, (final_fwd, final_bwd) = bi(x, torch.tensor([5, 2]))
    assert final_fwd.h.shape == final_fwd.c.shape == (1, 2, 4)  # torch's (L, B, H)
    h, c = _step_loop(cell, x[1, :2])
    torch.testing.assert_close(final_fwd.h[0, 1], h[0])
    torch.testing.assert_close(final_fwd.c[0, 1], c[0])
    h, c = _step_loop(cell, x[1, :2].flip(0))
    torch.testing.assert_close(final_bwd.h[0, 1], h[0])
    torch.testing.assert_close(final_bwd.c[0, 1], c[0])


def _gradients(loss, modules):
    parameters = [p for module in modules for p in module.parameters()]
    return torch.autograd.grad(loss, parameters)


@pytest.mark.parametrize("kernel", ["padded", "packed"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("grad", [False, True])
def test_mixed_directions_equal_the_two_bare_modules(layers, grad, kernel):
    """Bidirectional(nn.LSTM, nn.GRU) of different sizes: outputs, finals and gradients by value,
    with either kernel per direction."""
    torch.manual_seed(6)
    forward = nn.LSTM(3, 8, num_layers=layers, batch_first=True).to(DOUBLE)
    backward = nn.GRU(3, 5, num_layers=layers, batch_first=True).to(DOUBLE)
    bi = Bidirectional(forward, backward)
    bi.force_kernel = kernel
    x, lengths = torch.randn(3, 6, 3, dtype=DOUBLE), torch.tensor([6, 3, 1])
    with torch.set_grad_enabled(grad):
        result = bi(x, lengths)
        expected, (final_fwd, final_bwd) = bidirectional_by_hand(
            forward, backward, x, lengths, lambda f, b: torch.cat([f, b], dim=-1)
        )
    assert bi.kernels == (kernel, kernel) and f"forced by force_kernel={kernel!r}" in bi.explain()
    mask = valid_mask(lengths, 6)
    assert result.output.shape == (3, 6, 13) and result.summary.shape == (3, 13)
    torch.testing.assert_close(result.output * mask, expected * mask, atol=1e-12, rtol=0)
    assert (result.output * (1 - mask)).abs().max() == 0  # zero at padding
    assert isinstance(result.final.fwd, LSTMState) and result.final.fwd.h.shape == (layers, 3, 8)
    assert_same_state(result.final.fwd, final_fwd, atol=1e-12, rtol=0)
    assert_same_state(result.final.bwd, final_bwd, atol=1e-12, rtol=0)
    summary = torch.cat([final_fwd[0][-1], final_bwd[-1]], dim=-1)
    torch.testing.assert_close(result.summary, summary, atol=1e-12, rtol=0)
    if grad:
        weights = torch.randn(3, 6, 13, dtype=DOUBLE)
        ours = (result.output * weights).sum() + result.final.fwd.c.square().sum() + result.summary.sum()
        theirs = (expected * mask * weights).sum() + final_fwd[1].square().sum() + summary.sum()
        for mine, reference in zip(_gradients(ours, bi.children()), _gradients(theirs, bi.children()), strict=True):
            torch.testing.assert_close(mine, reference, atol=1e-12, rtol=0)


def _suffix_sum(f, b):
    """A merge that reads later time steps: out_t = Σ_{s >= t} f_s ⊙ b_s + 1 (padding must reach it as 0)."""
    return (f * b).flip(1).cumsum(1).flip(1) + 1


@pytest.mark.parametrize("merge", [None, lambda f, b: f - b, _suffix_sum], ids=["pair", "difference", "suffix-sum"])
def test_merge_none_and_callables_equal_the_merge_by_hand(merge):
    torch.manual_seed(7)
    forward, backward = nn.GRU(3, 4, batch_first=True).to(DOUBLE), nn.GRU(3, 4, batch_first=True).to(DOUBLE)
    x, lengths = torch.randn(3, 5, 3, dtype=DOUBLE), torch.tensor([5, 2, 4])
    result = Bidirectional(forward, backward, merge=merge)(x, lengths)
    expected, (final_fwd, final_bwd) = bidirectional_by_hand(forward, backward, x, lengths, merge)
    mask = valid_mask(lengths, 5)
    if merge is None:
        assert isinstance(result.output, tuple)
        for mine, theirs in zip(result.output, expected, strict=True):
            torch.testing.assert_close(mine, theirs, atol=1e-12, rtol=0)  # zero at padding on both sides
    else:
        torch.testing.assert_close(result.output * mask, expected * mask, atol=1e-12, rtol=0)
        assert (result.output * (1 - mask)).abs().max() == 0
    torch.testing.assert_close(result.final.fwd, final_fwd, atol=1e-12, rtol=0)
    torch.testing.assert_close(result.final.bwd, final_bwd, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kernel", [None, *KERNELS])
def test_birnn_callable_merge_equals_the_merge_by_hand(kernel):
    torch.manual_seed(8)
    concat = BiRNN(3, 4, cell="gru").to(DOUBLE)
    merged = BiRNN(3, 4, cell="gru", merge=_suffix_sum).to(DOUBLE)
    merged.load_state_dict(concat.state_dict())
    concat.force_kernel = merged.force_kernel = kernel
    x, lengths = torch.randn(3, 5, 3, dtype=DOUBLE), torch.tensor([5, 2, 4])
    halves = concat(x, lengths).output  # zero at padding
    expected = _suffix_sum(halves[..., :4], halves[..., 4:])
    result = merged(x, lengths)
    mask = valid_mask(lengths, 5)
    torch.testing.assert_close(result.output * mask, expected * mask, atol=1e-12, rtol=0)
    assert (result.output * (1 - mask)).abs().max() == 0


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("kernel", [None, *KERNELS])
def test_birnn_lstm_finals_are_hx_for_nn_lstm(kernel, grad, layers):
    torch.manual_seed(9)
    batch, inputs, hidden = 3, 4, 5
    model = BiRNN(inputs, hidden, num_layers=layers, cell="lstm").to(DOUBLE)
    model.force_kernel = kernel
    reference = nn.LSTM(inputs, hidden, num_layers=layers, bidirectional=True, batch_first=True).to(DOUBLE)
    reference.load_state_dict(model.state_dict())
    x, lengths = torch.randn(batch, 6, inputs, dtype=DOUBLE), torch.tensor([6, 2, 4])
    with torch.set_grad_enabled(grad):
        final = model(x, lengths).final
    with torch.no_grad():
        _, (h_n, c_n) = torch_reference(reference, x, lengths)
    for state, direction in ((final.fwd, 0), (final.bwd, 1)):
        assert type(state) is LSTMState and isinstance(state, tuple)
        assert state.h.shape == state.c.shape == (layers, batch, hidden)
        torch.testing.assert_close(state.h, h_n[direction::2], atol=1e-12, rtol=0)
        torch.testing.assert_close(state.c, c_n[direction::2], atol=1e-12, rtol=0)
    decoder = nn.LSTM(2, hidden, num_layers=layers, batch_first=True).to(DOUBLE)
    y = torch.randn(batch, 3, 2, dtype=DOUBLE)
    out, (h, c) = decoder(y, final.fwd)
    expected, _ = decoder(y, (h_n[0::2].contiguous(), c_n[0::2].contiguous()))
    assert out.shape == (batch, 3, hidden) and h.shape == c.shape == (layers, batch, hidden)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("grad", [False, True])
def test_bidirectional_lstm_finals_are_hx_for_nn_lstm(grad, layers):
    torch.manual_seed(10)
    bi = Bidirectional(nn.LSTM(4, 5, num_layers=layers, batch_first=True)).to(DOUBLE)
    x, lengths = torch.randn(3, 6, 4, dtype=DOUBLE), torch.tensor([6, 2, 4])
    with torch.set_grad_enabled(grad):
        final = bi(x, lengths).final
    _, (final_fwd, final_bwd) = bidirectional_by_hand(bi.forward_layer, bi.backward_layer, x, lengths, None)
    assert type(final.fwd) is LSTMState and final.fwd.h.shape == final.fwd.c.shape == (layers, 3, 5)
    assert_same_state(final.fwd, final_fwd, atol=1e-12, rtol=0)
    assert_same_state(final.bwd, final_bwd, atol=1e-12, rtol=0)
    decoder = nn.LSTM(2, 5, num_layers=layers, batch_first=True).to(DOUBLE)
    y = torch.randn(3, 3, 2, dtype=DOUBLE)
    out, (h, _) = decoder(y, final.fwd)
    assert out.shape == (3, 3, 5) and h.shape == (layers, 3, 5)
    torch.testing.assert_close(out, decoder(y, final_fwd)[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(decoder(y, final.bwd)[0], decoder(y, final_bwd)[0], atol=1e-12, rtol=0)
    assert bi(x, lengths, initial=final).output.shape == (3, 6, 10)  # a final is also an initial state


class _Seq2Seq(nn.Module):
    """An encoder whose final states start a decoder: the finals as torch's own hx."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = nn.LSTM(2, 5, batch_first=True)

    def forward(self, x, lengths, y):
        final = self.encoder(x, lengths).final
        return self.decoder(y, final.fwd)[0] + self.decoder(y, final.bwd)[0]


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("encoder", ["BiRNN", "Bidirectional"])
def test_finals_as_hx_under_torch_compile(encoder, grad):
    torch.manual_seed(11)
    module = BiRNN(4, 5, cell="lstm") if encoder == "BiRNN" else Bidirectional(nn.LSTM(4, 5, batch_first=True))
    model = _Seq2Seq(module)
    x, lengths, y = torch.randn(3, 6, 4), torch.tensor([6, 2, 4]), torch.randn(3, 3, 2)
    with torch.set_grad_enabled(grad):
        expected = model(x, lengths, y)
        compiled = torch.compile(model, backend="eager")  # graph capture; needs no C++ toolchain
        torch.testing.assert_close(compiled(x, lengths, y), expected)


def test_heterogeneous_stack_runs_per_direction():
    torch.manual_seed(12)
    stack = BiRNN(3, 8, backward_hidden_size=5, num_layers=2).to(DOUBLE)
    x, lengths = torch.randn(2, 6, 3, dtype=DOUBLE), torch.tensor([6, 3])
    result = stack(x, lengths)
    assert stack.kernel == "per-direction" and "different hidden sizes" in stack.explain()
    assert result.output.shape == (2, 6, 13) and result.final.fwd.h.shape == (2, 2, 8)
    for b, n in enumerate([6, 3]):  # each sequence alone: no padding at all
        alone = stack(x[b : b + 1, :n])
        torch.testing.assert_close(result.output[b, :n], alone.output[0], atol=1e-12, rtol=0)
        ours, theirs = (*result.final.fwd, *result.final.bwd), (*alone.final.fwd, *alone.final.bwd)
        for mine, reference in zip(ours, theirs, strict=True):
            torch.testing.assert_close(mine[:, b], reference[:, 0], atol=1e-12, rtol=0)
    assert result.output[1, 3:].abs().max() == 0


def test_kernel_choice_is_explained():
    model = BiRNN(3, 4, cell="lstm")
    model(torch.randn(2, 5, 3))
    assert model.kernel == "fused"
    model(torch.randn(2, 5, 3), torch.tensor([5, 2]))
    assert model.kernel == "hand-bptt" and "skips the padding" in model.explain()
    with torch.no_grad():
        model(torch.randn(2, 5, 3), torch.tensor([5, 2]))
    assert model.kernel == "fused-packed" and "skips the padding" in model.explain()
    rnn = BiRNN(3, 4, cell="rnn")
    x, lengths = torch.randn(3, 5, 3), torch.tensor([5, 2, 4])
    with torch.no_grad():
        out = rnn(x, lengths)
        assert rnn.kernel == "hand-bptt" and "Elman RNN" in rnn.explain()
        rnn.force_kernel = "fused-packed"
        torch.testing.assert_close(rnn(x, lengths).output, out.output)
        torch.testing.assert_close(rnn(x, lengths).final.bwd, out.final.bwd)


def test_torch_compile_gives_the_same_result():
    torch.manual_seed(4)
    model = BiRNN(3, 4, num_layers=2, cell="gru")
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 3])
    expected = model(x, lengths).output
    compiled = torch.compile(model, backend="eager")
    torch.testing.assert_close(compiled(x, lengths).output, expected)


def test_bad_input_names_the_argument():
    model = BiRNN(3, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, I\)"):
        model(torch.randn(5, 3))
    with pytest.raises(ValueError, match="x must have 3 features"):
        model(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\)"):
        model(torch.randn(2, 5, 3), torch.tensor([5]))
    with pytest.raises(TypeError, match="lengths must hold integers"):
        model(torch.randn(2, 5, 3), torch.tensor([5.0, 2.0]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=5\]; got min 0"):
        model(torch.randn(2, 5, 3), torch.tensor([5, 0]))
    with pytest.raises(ValueError, match="must be unidirectional"):
        Bidirectional(nn.LSTM(3, 4, batch_first=True, bidirectional=True))
    with pytest.raises(ValueError, match="batch_first=True"):
        Bidirectional(nn.LSTM(3, 4))
    with pytest.raises(TypeError, match="forward must be nn.RNN/nn.GRU/nn.LSTM"):
        Bidirectional(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="merge='sum' needs directions of equal size"):
        Bidirectional(nn.LSTM(3, 8, batch_first=True), nn.GRU(3, 5, batch_first=True), merge="sum")
    with pytest.raises(ValueError, match="cell must be one of"):
        BiRNN(3, 4, cell="transformer")


@pytest.mark.parametrize("kernel", KERNELS)
def test_x_of_another_dtype_than_the_parameters_names_both(kernel):
    model = BiRNN(3, 4)
    model.force_kernel = kernel
    lengths = torch.tensor([5, 3])
    for dtype in (torch.float64, torch.float16):
        with pytest.raises(TypeError, match=rf"x must have the dtype of the module's parameters, torch.float32 "
                                            rf"\(weight_ih_l0\); got x of dtype {dtype}"):
            model(torch.randn(2, 5, 3).to(dtype), lengths)
    with pytest.raises(TypeError, match="x must be a float tensor; got dtype torch.int64"):
        model(torch.ones(2, 5, 3, dtype=torch.int64), lengths)
    model.double()
    assert model(torch.randn(2, 5, 3, dtype=torch.float64), lengths).output.dtype == torch.float64


def test_bidirectional_and_recurrent_check_the_dtype_of_their_modules():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    for module, name in ((Bidirectional(nn.GRU(3, 4, batch_first=True)), "forward_layer.weight_ih_l0"),
                         (Bidirectional(Recurrent(nn.LSTMCell(3, 4))), "forward_layer.cell.weight_ih"),
                         (Recurrent(nn.RNNCell(3, 4)), "cell.weight_ih")):
        with pytest.raises(TypeError, match=rf"x must have the dtype .* torch.float32 \({name}\); got x of dtype "
                                            r"torch.float64"):
            module(x)
    mixed = Bidirectional(nn.GRU(3, 4, batch_first=True), nn.GRU(3, 4, batch_first=True).double())
    with pytest.raises(TypeError, match=r"torch.float32 \(forward_layer.weight_ih_l0\); got x of dtype torch.float64"):
        mixed(x)
    with pytest.raises(TypeError, match=r"torch.float64 \(backward_layer.weight_ih_l0\); got x of dtype torch.float32"):
        mixed(x.float())


def test_x_on_another_device_than_the_parameters_and_lengths_without_values_are_named():
    model = BiRNN(3, 4)
    with pytest.raises(ValueError, match=r"x must be on the device of the module's parameters, cpu \(weight_ih_l0\); "
                                         r"got x on meta"):
        model(torch.zeros(2, 5, 3, device="meta"))
    with pytest.raises(ValueError, match="lengths must hold values; got a tensor on the meta device"):
        model(torch.randn(2, 5, 3), torch.tensor([5, 3], device="meta"))


def test_autocast_may_feed_another_dtype():
    model = BiRNN(3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 5, 3, dtype=torch.bfloat16), torch.tensor([5, 3])).output
    assert out.shape == (2, 5, 8)


def _packed_cell_states(module: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """torch's own c after each sequence's last valid step (a packed call): (1, B, H)."""
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    return module(packed)[1][1]


@pytest.mark.parametrize("mode", ["grad", "no_grad", "inference_mode"])
def test_an_lstm_cell_state_is_computed_when_read_in_the_mode_of_the_call(mode):
    """On varying lengths the padded fused kernel's c is the one after step T, so Bidirectional
    recomputes c at lengths-1 only when the final is read; read after the no-grad or inference
    block has ended, it is still computed as inside it, and it equals torch's packed c."""
    torch.manual_seed(13)
    forward = nn.LSTM(3, 4, batch_first=True).to(DOUBLE)
    bi = Bidirectional(forward, nn.GRU(3, 2, batch_first=True).to(DOUBLE))
    x, lengths = torch.randn(3, 6, 3, dtype=DOUBLE, requires_grad=True), torch.tensor([6, 2, 4])
    context = {"grad": torch.enable_grad, "no_grad": torch.no_grad, "inference_mode": torch.inference_mode}[mode]
    with context():
        result = bi(x, lengths)
        summary = result.summary  # the h parts only
    from birnn.nn.deferred import Deferred

    assert isinstance(result.final._fwd.c, Deferred)  # output and summary read, c not yet computed
    c = result.final.fwd.c
    assert isinstance(c, torch.Tensor) and result.final.fwd.c is c  # computed once
    with torch.no_grad():
        torch.testing.assert_close(c, _packed_cell_states(forward, x, lengths), atol=1e-12, rtol=0)
    assert (c.grad_fn is not None) == (mode == "grad")
    assert c.is_inference() == (mode == "inference_mode")
    torch.testing.assert_close(summary[:, :4], result.final.fwd.h[0])
    if mode == "grad":  # the late computation joins the graph: its gradient reaches x
        (gx,) = torch.autograd.grad(c.sum(), x)
        assert gx.abs().sum() > 0


def test_unpacking_a_final_computes_it_and_ignoring_it_does_not():
    torch.manual_seed(14)
    rnn = BiRNN(3, 4, backward_hidden_size=3, cell="lstm")  # per-direction: fused kernels, padded
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 2])
    out, final = rnn(x, lengths)
    assert rnn.kernel == "per-direction"
    from birnn.nn.deferred import is_deferred

    assert is_deferred(final._fwd) and is_deferred(final._bwd)
    (h_fwd, c_fwd), (h_bwd, c_bwd) = final
    assert not is_deferred(final._fwd) and c_fwd.shape == (1, 2, 4) and c_bwd.shape == (1, 2, 3)
    assert len(final) == 2 and final[0] is final.fwd
