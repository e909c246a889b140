"""birnn.nn: parity with torch, padding invariance, finals, heterogeneous directions, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from birnn.nn import Bidirectional, BiRNN, Recurrent, reverse_padded
from birnn.nn.functional import last_valid
from nn_helpers import TORCH_CELLS, assert_same_gradients, torch_reference

DOUBLE = torch.float64


def test_reverse_padded_on_arange():
    x = torch.arange(8.0).view(2, 4, 1)
    out = reverse_padded(x, torch.tensor([4, 2]))
    assert out.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    assert torch.equal(reverse_padded(out, torch.tensor([4, 2])), x)


@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), extra=st.integers(0, 2))
def test_reverse_padded_is_an_involution(lengths, extra):
    x = torch.randn(len(lengths), max(lengths) + extra, 3)
    lens = torch.tensor(lengths)
    assert torch.equal(reverse_padded(reverse_padded(x, lens), lens), x)


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


def test_fused_module_finals_match_the_cell_loop():
    torch.manual_seed(3)
    lstm = nn.LSTM(3, 4, batch_first=True).to(DOUBLE)
    cell = nn.LSTMCell(3, 4).to(DOUBLE)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in lstm.state_dict().items()})
    bi = Bidirectional(lstm, lstm)
    x = torch.randn(2, 5, 3, dtype=DOUBLE)
    _, (final_fwd, final_bwd) = bi(x, torch.tensor([5, 2]))
    h, c = _step_loop(cell, x[1, :2])
    torch.testing.assert_close(final_fwd[0][1], h[0])
    torch.testing.assert_close(final_fwd[1][1], c[0])
    h, _ = _step_loop(cell, x[1, :2].flip(0))
    torch.testing.assert_close(final_bwd[0][1], h[0])


def test_heterogeneous_directions():
    bi = Bidirectional(nn.LSTM(3, 8, batch_first=True), nn.GRU(3, 5, batch_first=True))
    x = torch.randn(2, 6, 3)
    result = bi(x, torch.tensor([6, 3]))
    assert result.output.shape == (2, 6, 13) and result.summary.shape == (2, 13)
    result.output.sum().backward()
    for module in (bi.forward_layer, bi.backward_layer):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    stack = BiRNN(3, 8, backward_hidden_size=5, num_layers=2)
    assert stack(x, torch.tensor([6, 3])).output.shape == (2, 6, 13)
    assert stack.kernel == "per-direction" and "different hidden sizes" in stack.explain()


def test_merge_none_and_callable():
    x = torch.randn(2, 4, 3)
    pair = Bidirectional(nn.GRU(3, 4, batch_first=True), merge=None)(x).output
    assert isinstance(pair, tuple) and pair[0].shape == (2, 4, 4)
    out = Bidirectional(nn.GRU(3, 4, batch_first=True), merge=lambda f, b: f - b)(x).output
    assert out.shape == (2, 4, 4)


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
    with pytest.raises(TypeError, match="lengths must be an integer tensor"):
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
