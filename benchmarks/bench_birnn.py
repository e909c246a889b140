"""birnn.nn.BiRNN against torch's own ways of running a bidirectional RNN, in one run.

Train step (forward + backward) and inference, tokens/s (valid tokens only),
the ratio to torch's fused ``nn.LSTM(bidirectional=True)`` on padded input
(the speed reference, although wrong on variable lengths), and the share of
this machine's float32 GEMM peak (measured in the same run) in useful FLOPs.

    python benchmarks/bench_birnn.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402
from birnn.nn import BiRNN, reverse_padded  # noqa: E402
from birnn.nn.kernels import GATES  # noqa: E402

CONFIGS = {
    "a": dict(I=28, H=256, L=2, B=32, T=35, variable=False),
    "b": dict(I=100, H=128, L=1, B=64, T=50, variable=True),
    "c": dict(I=256, H=512, L=1, B=128, T=100, variable=False),
}
TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}
CELL = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn_tanh": nn.RNNCell}


def gemm_peak() -> float:
    """Float32 GEMM FLOP/s of this machine: best of a few 2048² products."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / best_time(torch.mm, a, b, repeats=5)


def useful_flops(cell: str, c: dict, tokens: int, train: bool) -> float:
    """2·(I_l + H)·G·H multiply-adds per token, direction and layer; a train step ≈ 3× forward."""
    total, layer_input = 0.0, c["I"]
    for _ in range(c["L"]):
        total += 2 * 2 * (layer_input + c["H"]) * GATES[cell] * c["H"]
        layer_input = 2 * c["H"]
    return total * tokens * (3 if train else 1)


def peers(cell: str, c: dict, lengths: torch.Tensor):
    """name -> function(x) returning the (B, T, 2H) output."""
    torch_bi = TORCH[cell](c["I"], c["H"], num_layers=c["L"], bidirectional=True, batch_first=True)
    ours = BiRNN(c["I"], c["H"], num_layers=c["L"], cell=cell)
    ours.load_state_dict(torch_bi.state_dict())
    fwd = [TORCH[cell](c["I"] if l == 0 else 2 * c["H"], c["H"], batch_first=True) for l in range(c["L"])]
    bwd = [TORCH[cell](c["I"] if l == 0 else 2 * c["H"], c["H"], batch_first=True) for l in range(c["L"])]
    cells = [
        (
            CELL[cell](c["I"] if l == 0 else 2 * c["H"], c["H"]),
            CELL[cell](c["I"] if l == 0 else 2 * c["H"], c["H"]),
        )
        for l in range(c["L"])
    ]
    variable = c["variable"]

    def torch_fused(x):
        return torch_bi(x)[0]

    def torch_packed(x):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        return nn.utils.rnn.pad_packed_sequence(torch_bi(packed)[0], batch_first=True, total_length=c["T"])[0]

    def two_modules_flip(x):
        for f, b in zip(fwd, bwd, strict=True):
            x = torch.cat([f(x)[0], reverse_padded(b(reverse_padded(x, lengths))[0], lengths)], dim=-1)
        return x

    def cell_loop(x):
        for f, b in cells:
            outs = []
            for module, seq in ((f, x), (b, reverse_padded(x, lengths))):
                state, hs = None, []
                for t in range(seq.shape[1]):
                    state = module(seq[:, t], state)
                    hs.append(state[0] if isinstance(state, tuple) else state)
                outs.append(torch.stack(hs, 1))
            x = torch.cat([outs[0], reverse_padded(outs[1], lengths)], dim=-1)
        return x

    result = {"torch fused (padded)": torch_fused}
    if variable:
        result["torch packed"] = torch_packed
    result["two torch modules + reverse_padded"] = two_modules_flip
    result["per-step cell loop"] = cell_loop
    result["birnn BiRNN"] = lambda x: ours(x, lengths if variable else None).output
    return result, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="configs (a) and (b) only, 2 repeats")
    args = parser.parse_args()
    repeats = 2 if args.quick else 3
    torch.manual_seed(0)
    peak = gemm_peak()
    print(f"# BiRNN speed — {machine()}; float32 GEMM peak {peak / 1e9:.0f} GFLOP/s\n")
    print(
        "| config | cell | implementation | train tok/s | × fused | % peak | infer tok/s | × fused | kernel (train) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    runs = [("a", "lstm"), ("b", "lstm"), ("b", "gru"), ("b", "rnn_tanh")]
    if not args.quick:
        runs.append(("c", "lstm"))
    for name, cell in runs:
        c = CONFIGS[name]
        g = torch.Generator().manual_seed(0)
        lengths = (
            torch.randint(10, c["T"] + 1, (c["B"],), generator=g) if c["variable"] else torch.full((c["B"],), c["T"])
        )
        tokens = int(lengths.sum())
        x = torch.randn(c["B"], c["T"], c["I"], generator=g)
        functions, ours = peers(cell, c, lengths)
        reference = None
        for label, fn in functions.items():
            xg = x.clone().requires_grad_(True)

            def train(fn=fn, xg=xg):
                fn(xg).sum().backward()

            def infer(fn=fn, x=x):
                with torch.no_grad():
                    fn(x)

            train()
            kernel = ours.kernel if label == "birnn BiRNN" else ""
            t_train, t_infer = best_time(train, repeats=repeats), best_time(infer, repeats=repeats)
            if reference is None:
                reference = (t_train, t_infer)
            share = useful_flops(cell, c, tokens, True) / t_train / peak
            print(
                f"| ({name}) | {cell} | {label} | {tokens / t_train:,.0f} | {reference[0] / t_train:.2f} | "
                f"{100 * share:.0f}% | {tokens / t_infer:,.0f} | {reference[1] / t_infer:.2f} | {kernel} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
