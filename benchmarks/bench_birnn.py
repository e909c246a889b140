"""birnn.nn.BiRNN against torch's own ways of running a bidirectional RNN, and JAX peers, in one run.

Train step (forward + backward) and inference, tokens/s (valid tokens only), the
speed-up over a reference row (``× ref``: reference time ÷ this time) and the
share of this machine's float32 GEMM peak (measured in the same run) in useful FLOPs.

- Homogeneous rows: the reference is torch's fused ``nn.LSTM(bidirectional=True)``
  (or GRU/RNN) on the padded input — the speed reference, although wrong on
  variable lengths.
- Heterogeneous directions (config (b), forward H=128 and a backward of another
  cell or H=64): the reference is the two bare unidirectional torch modules run
  separately, forward on ``x`` and backward on ``reverse_padded(x, lengths)``
  (reversed once, outside the timing), their times summed; bare and ours alternate
  within each repeat. The lines under the table give ours ÷ bare time, the
  issue's "within 1.10×".
- Optional JAX peers, when importable (else a "skipped" row): Keras 3
  ``Bidirectional(LSTM/GRU/SimpleRNN)`` on the JAX backend and Flax linen
  ``Bidirectional(RNN(cell), RNN(cell))``, each a jit-compiled
  ``jax.value_and_grad`` train step and a jitted inference, timed after compile
  and warm-up with ``block_until_ready``; see ``_jax_peers.py``. Install them with
  ``pip install jax flax keras`` (measured with jax 0.10.2, flax 0.12.8, keras 3.15.1).

    python benchmarks/bench_birnn.py            # configs (a), (b), (c), 3 repeats
    python benchmarks/bench_birnn.py --quick    # configs (a) and (b) only, 2 repeats
    python benchmarks/bench_birnn.py --no-jax   # torch rows only (JAX compiles take minutes)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _jax_peers import describe, jax_peers  # noqa: E402
from _timing import best_time, machine  # noqa: E402
from birnn.nn import Bidirectional, BiRNN, reverse_padded  # noqa: E402
from birnn.spec import GATES  # noqa: E402

CONFIGS = {
    "a": dict(I=28, H=256, L=2, B=32, T=35, variable=False),
    "b": dict(I=100, H=128, L=1, B=64, T=50, variable=True),
    "c": dict(I=256, H=512, L=1, B=128, T=100, variable=False),
}
TORCH = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}
CELL = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn_tanh": nn.RNNCell}
# Heterogeneous directions at (b): (forward cell, Hf), (backward cell, Hb).
HETERO = [(("lstm", 128), ("gru", 64)), (("lstm", 128), ("lstm", 64))]
OURS = ("birnn BiRNN", "birnn Bidirectional")

Step = Callable[[], None]


def gemm_peak() -> float:
    """Float32 GEMM FLOP/s of this machine: the best of 40 products of 2048² matrices (about 4 s).

    On a shared VM one product takes between 100 and 170 GFLOP/s within seconds;
    the best of a long burst is the machine's peak, not a slow moment's.
    """
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / best_time(torch.mm, a, b, repeats=40)


def useful_flops(directions: list[tuple[str, int]], c: dict, tokens: int, train: bool) -> float:
    """2·(I_l + H)·G·H multiply-adds per token, direction and layer; a train step ≈ 3× forward.

    directions: [(cell, H) forward, (cell, H) backward]; layer l > 0 reads Hf + Hb features.
    """
    total, layer_input = 0.0, c["I"]
    for _ in range(c["L"]):
        total += sum(2 * (layer_input + h) * GATES[cell] * h for cell, h in directions)
        layer_input = sum(h for _, h in directions)
    return total * tokens * (3 if train else 1)


def torch_steps(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[Step, Step]:
    """(train, infer) of ``fn(x (B, T, I)) -> (B, T, D)``: sum-backward with x.requires_grad, no_grad forward."""
    xg = x.clone().requires_grad_(True)

    def train() -> None:
        fn(xg).sum().backward()

    def infer() -> None:
        with torch.no_grad():
            fn(x)

    train()  # warm-up
    return train, infer


def peers(cell: str, c: dict, lengths: torch.Tensor) -> tuple[dict[str, Callable], BiRNN]:
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


def hetero_peers(
    directions: list[tuple[str, int]], c: dict, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[tuple[Step, Step], dict[str, nn.Module]]:
    """(bare train, bare infer) summing the two unidirectional runs, and our modules by name.

    The bare steps run the forward module on x and the backward one on reverse_padded(x),
    reversed once here; ours reverse inside the timed call.
    """
    (cell_f, h_f), (cell_b, h_b) = directions
    bare_f = TORCH[cell_f](c["I"], h_f, batch_first=True)
    bare_b = TORCH[cell_b](c["I"], h_b, batch_first=True)
    steps_f = torch_steps(lambda x: bare_f(x)[0], x)
    steps_b = torch_steps(lambda x: bare_b(x)[0], reverse_padded(x, lengths))

    def bare_train() -> None:
        steps_f[0]()
        steps_b[0]()

    def bare_infer() -> None:
        steps_f[1]()
        steps_b[1]()

    ours: dict[str, nn.Module] = {}
    if cell_f == cell_b:
        ours["birnn BiRNN"] = BiRNN(c["I"], h_f, cell=cell_f, backward_hidden_size=h_b)
    ours["birnn Bidirectional"] = Bidirectional(
        TORCH[cell_f](c["I"], h_f, batch_first=True), TORCH[cell_b](c["I"], h_b, batch_first=True)
    )
    return (bare_train, bare_infer), ours


def timed_interleaved(candidates: list[tuple[Step, Step]], repeats: int) -> list[tuple[float, float]]:
    """Best (train, infer) seconds of each candidate: in each of ``repeats`` rounds, every candidate
    runs a burst (one untimed call, then the best of 2) of each step, the candidates alternating.

    The bursts run warm, as consecutive steps do; alternating them keeps the ratios between
    candidates meaningful when the machine's speed drifts (on a shared VM it does, by ±15%).
    """
    best = [[float("inf"), float("inf")] for _ in candidates]
    for _ in range(repeats):
        for times, steps in zip(best, candidates, strict=True):
            for i, step in enumerate(steps):
                step()
                times[i] = min(times[i], best_time(step, repeats=2))
    return [(train, infer) for train, infer in best]


def row(config: str, cell: str, label: str, tokens: int, times, reference, flops: float, peak: float, kernel: str):
    """One table line; ``times`` and ``reference`` are (train, infer) seconds, ``flops`` of one train step."""
    t_train, t_infer = times
    print(
        f"| ({config}) | {cell} | {label} | {tokens / t_train:,.0f} | {reference[0] / t_train:.2f} | "
        f"{100 * flops / t_train / peak:.0f}% | {tokens / t_infer:,.0f} | {reference[1] / t_infer:.2f} | {kernel} |",
        flush=True,
    )


def batch(c: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (B, T, I) normal; lengths: (B,) uniform in [10, T] for variable configs, else all T."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, c["T"] + 1, (c["B"],), generator=g) if c["variable"] else torch.full((c["B"],), c["T"])
    return torch.randn(c["B"], c["T"], c["I"], generator=g), lengths


def run_homogeneous(name: str, cell: str, peak: float, repeats: int, with_jax: bool) -> None:
    """Rows of one config and cell: torch's ways, ours, then the JAX peers; × ref against torch fused."""
    c = CONFIGS[name]
    x, lengths = batch(c)
    tokens = int(lengths.sum())
    flops = useful_flops([(cell, c["H"])] * 2, c, tokens, True)
    functions, ours = peers(cell, c, lengths)
    labels, candidates, kernels = [], [], []
    for label, fn in functions.items():
        candidates.append(torch_steps(fn, x))
        kernels.append(ours.kernel if label in OURS else "")  # set by the warm-up train step
        labels.append(label)
    skipped = []
    if with_jax:
        for label, peer in jax_peers(cell, c, x.numpy(), lengths.numpy() if c["variable"] else None).items():
            if isinstance(peer, str):
                skipped.append((label, peer))
            else:
                labels.append(label)
                candidates.append(peer)
                kernels.append("jax.jit")
    times = timed_interleaved(candidates, repeats)
    for label, timing, kernel in zip(labels, times, kernels, strict=True):
        row(name, cell, label, tokens, timing, times[0], flops, peak, kernel)
    for label, why in skipped:
        print(f"| ({name}) | {cell} | {label} | {why} | | | | | |", flush=True)


def run_heterogeneous(name: str, directions: list[tuple[str, int]], peak: float, repeats: int) -> list[tuple]:
    """Rows of directions of different cells or sizes, × ref against the bare unidirectional runs.

    Returns (label, implementation, train ours/bare time, inference ours/bare time) per module of ours.
    """
    c = CONFIGS[name]
    x, lengths = batch(c)
    tokens = int(lengths.sum())
    label = " / ".join(f"{k} H={h}" for k, h in directions)
    flops = useful_flops(directions, c, tokens, True)
    bare, ours = hetero_peers(directions, c, x, lengths)
    steps, kernels = [], []
    for module in ours.values():
        steps.append(torch_steps(lambda x, m=module: m(x, lengths).output, x))
        kernels.append(getattr(module, "kernel", ""))  # set by the warm-up train step
    reference, *times_ours = timed_interleaved([bare, *steps], repeats)
    row(name, label, "bare fwd + bwd torch modules (sum)", tokens, reference, reference, flops, peak, "")
    ratios = []
    for ours_label, times, kernel in zip(ours, times_ours, kernels, strict=True):
        row(name, label, ours_label, tokens, times, reference, flops, peak, kernel)
        ratios.append((label, ours_label, times[0] / reference[0], times[1] / reference[1]))
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="configs (a) and (b) only, 2 repeats")
    parser.add_argument("--no-jax", action="store_true", help="skip the Keras and Flax peers")
    import _report

    _report.add_option(parser)
    args = parser.parse_args()
    repeats = 2 if args.quick else 3
    torch.manual_seed(0)
    peak = gemm_peak()
    recording = _report.Recording()
    print(
        f"# BiRNN speed — {machine()}; float32 GEMM peak {peak / 1e9:.0f} GFLOP/s; "
        f"{describe(torch.get_num_threads())}\n"
    )
    print("| config | cell | implementation | train tok/s | × ref | % peak | infer tok/s | × ref | kernel (train) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for name, cell in [("a", "lstm"), ("b", "lstm"), ("b", "gru"), ("b", "rnn_tanh")]:
        run_homogeneous(name, cell, peak, repeats, not args.no_jax)
    ratios = [r for directions in HETERO for r in run_heterogeneous("b", list(directions), peak, repeats)]
    if not args.quick:
        run_homogeneous("c", "lstm", peak, repeats, not args.no_jax)
    print("\nHeterogeneous directions at (b), ours ÷ bare unidirectional time (target: within 1.10×):")
    for label, ours_label, train, infer in ratios:
        print(f"- {label}, {ours_label}: train {train:.2f}×, inference {infer:.2f}×")
    _report.finish(args, "bench_birnn", recording, peers=("jax", "flax", "keras"))


if __name__ == "__main__":
    main()
