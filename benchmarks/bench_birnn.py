"""birnn.nn.BiRNN against torch's own ways of running a bidirectional RNN, and JAX peers, in one run.

Train step (forward + backward, the input needing its gradient) and inference,
tokens/s (valid tokens only, the best round), the speed-up over a reference row (``× ref``:
reference time ÷ this time, the median over rounds of the ratio of the two bursts
timed side by side), over the fastest *correct* torch path for the same
work (``× correct``: on varying lengths the padded fused call is wrong, so packed
or two modules with ``reverse_padded``), and the share of this machine's float32
GEMM peak in the FLOPs that actually run (padded kernels compute every padding
position; packed ones and ``hand-bptt`` only the valid ones). The peak is torch's
own ``matmul`` at the thread count used, the best over square sizes 256–2048,
measured before every configuration; ``% peak`` divides by the best of the whole
run, so it cannot exceed 100% unless a row beat every GEMM measurement (then it
is marked). ``BiRNN`` chooses its kernels by measurement (``birnn.nn.tuning``),
in a fresh cache directory so that the run measures them itself; the kernel of
every birnn row, training and inference, is in the last column and the measured
candidates under the table.

- Homogeneous rows: the reference is torch's fused ``nn.LSTM(bidirectional=True)``
  (or GRU/RNN) on the padded input — the speed reference, although wrong on
  variable lengths.
- Heterogeneous directions (config (b), forward LSTM H=128 and a backward GRU
  H=64 or H=128, or an LSTM H=64): the reference is the two bare unidirectional torch modules run
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

    python benchmarks/bench_birnn.py            # configs (a), (b), (c), 9 rounds (--rounds N)
    python benchmarks/bench_birnn.py --quick    # configs (a) and (b) only, 2 rounds
    python benchmarks/bench_birnn.py --no-jax   # torch rows only (JAX compiles take minutes)
    python benchmarks/bench_birnn.py --avx2     # as on an AVX2 machine: section bench_birnn_avx2

``--avx2`` runs the benchmark again in a fresh process whose libraries are capped at
AVX2 (``AVX2_CAPS``: torch's own kernels, MKL, oneDNN and XLA), so that an AVX-512
machine also measures what the kernel choices do on AVX2 machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

AVX2_CAPS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
}
if "--avx2" in sys.argv and os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":  # the caps act only before loading
    os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | AVX2_CAPS)

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _jax_peers import describe, jax_peers  # noqa: E402
from _report import blas  # noqa: E402
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
HETERO = [(("lstm", 128), ("gru", 64)), (("lstm", 128), ("gru", 128)), (("lstm", 128), ("lstm", 64))]
OURS = ("birnn BiRNN", "birnn Bidirectional")

Step = Callable[[], None]


PEAK_SIZES = (256, 512, 1024, 2048)


def gemm_peak() -> tuple[float, int]:
    """(FLOP/s, size) of the fastest float32 ``torch.matmul`` of two n×n matrices, n in PEAK_SIZES,
    at the current thread count: the best of a burst of about 1 s per size.

    On a shared machine one product's speed varies by tens of per cent within
    seconds; the best of a burst is the machine's peak, not a slow moment's.
    """
    best, size = 0.0, 0
    for n in PEAK_SIZES:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.matmul(a, b)
        seconds = best_time(torch.matmul, a, b, repeats=max(3, int(2e10 / (2 * n**3))), budget=1.0)
        if 2 * n**3 / seconds > best:
            best, size = 2 * n**3 / seconds, n
    return best, size


def token_flops(directions: list[tuple[str, int]], c: dict, train: bool, input_grad: bool = True) -> float:
    """Multiply-add FLOPs per computed token: forward 2·(I_l + H)·G·H per direction and layer l;
    a train step adds the weight gradients (the same again), the recurrent gradient dh_{t-1} = dhp W_hh
    (2·H·G·H) and, on layers above the first or when the input needs its gradient, dX = dxp W_ih (2·I_l·G·H).

    directions: [(cell, H) forward, (cell, H) backward]; layer l > 0 reads Hf + Hb features.
    """
    total, layer_input = 0.0, c["I"]
    for layer in range(c["L"]):
        for cell, h in directions:
            gates = GATES[cell] * h
            forward = 2 * (layer_input + h) * gates
            total += forward
            if train:
                total += forward + 2 * h * gates + (2 * layer_input * gates if layer > 0 or input_grad else 0)
        layer_input = sum(h for _, h in directions)
    return total


def computed_tokens(kernel: str, c: dict, tokens: int) -> int:
    """Tokens a kernel computes: every padding position on padded calls, the valid ones when packed."""
    padded = c["B"] * c["T"]
    if kernel in ("fused-packed", "hand-bptt", "packed"):
        return tokens
    return padded


def hetero_flops(kernel: str, directions: list[tuple[str, int]], c: dict, tokens: int) -> float:
    """Train-step FLOPs of a heterogeneous row: each direction's FLOPs per token times the tokens its
    kernel computes (``Bidirectional`` names one kernel per direction, ``forward+backward``)."""
    parts = kernel.split("+") if "+" in kernel else [kernel, kernel]
    return sum(
        token_flops([d], c, train=True) * computed_tokens(k, c, tokens)
        for d, k in zip(directions, parts, strict=True)
    )


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


@dataclass(frozen=True)
class Timing:
    """One candidate's (train, infer) seconds in each round: ``rounds`` (R, 2), each the best of a burst."""

    rounds: tuple[tuple[float, float], ...]

    @property
    def best(self) -> tuple[float, float]:
        return min(r[0] for r in self.rounds), min(r[1] for r in self.rounds)

    def speedups(self, other: Timing, column: int) -> list[float]:
        """other's time ÷ this time in each round, from the two bursts measured side by side."""
        return [o[column] / r[column] for r, o in zip(self.rounds, other.rounds, strict=True)]

    def speedup(self, other: Timing, column: int) -> float:
        """The median over rounds of ``speedups``."""
        return float(statistics.median(self.speedups(other, column)))


def timed_interleaved(candidates: list[tuple[Step, Step]], repeats: int) -> list[Timing]:
    """Each candidate's (train, infer) seconds per round: in each of ``repeats`` rounds, every candidate
    runs a burst (one untimed call, then the best of 2) of each step, the candidates alternating.

    The bursts run warm, as consecutive steps do; alternating them and taking ratios between bursts of
    the same round keeps the ratios meaningful when the machine's speed drifts (on a shared VM it
    does, by ±15%).
    """
    rounds: list[list[tuple[float, float]]] = [[] for _ in candidates]
    for _ in range(repeats):
        for measured, steps in zip(rounds, candidates, strict=True):
            times = []
            for step in steps:
                step()
                times.append(best_time(step, repeats=2))
            measured.append((times[0], times[1]))
    return [Timing(tuple(measured)) for measured in rounds]


def fastest(timings: list[Timing], column: int) -> Timing:
    return min(timings, key=lambda t: t.best[column])


@dataclass
class Row:
    """One table line: the timing of this row, of its reference and of the fastest correct torch path
    (for training and for inference: two timings)."""

    config: str
    cell: str
    label: str
    tokens: int  # valid tokens
    timing: Timing
    reference: Timing
    correct: tuple[Timing, Timing]
    train_flops: float  # FLOPs one train step runs
    kernel: str = ""

    def line(self, peak: float) -> str:
        (train, infer), t = self.timing.best, self.timing
        share = 100 * self.train_flops / train / peak
        shown = f"{share:.0f}%" if share <= 100 else "above peak†"
        return (
            f"| ({self.config}) | {self.cell} | {self.label} | {self.tokens / train:,.0f} | "
            f"{t.speedup(self.reference, 0):.2f} | {t.speedup(self.correct[0], 0):.2f} | {shown} | "
            f"{self.tokens / infer:,.0f} | {t.speedup(self.reference, 1):.2f} | {t.speedup(self.correct[1], 1):.2f} | "
            f"{self.kernel} |"
        )


def batch(c: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (B, T, I) normal; lengths: (B,) uniform in [10, T] for variable configs, else all T."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, c["T"] + 1, (c["B"],), generator=g) if c["variable"] else torch.full((c["B"],), c["T"])
    return torch.randn(c["B"], c["T"], c["I"], generator=g), lengths


CORRECT_ON_VARYING = ("torch packed", "two torch modules + reverse_padded")
TORCH_ROWS = ("torch fused (padded)", "torch packed", "two torch modules + reverse_padded", "per-step cell loop")


def _kernels(module: nn.Module, steps: tuple[Step, Step], explanations: list[str], label: str) -> tuple[str, str]:
    """(train kernel, inference kernel) of one of our modules; runs one inference step (the train
    step ran in ``torch_steps``), collecting ``explain()`` of both in ``explanations``; a
    ``Bidirectional`` names its two directions' kernels as ``forward+backward``."""

    def kernel() -> str:
        return "+".join(module.kernels) if isinstance(module, Bidirectional) else module.kernel

    train = kernel()
    explanations.append(f"- {label}, train: {module.explain()}")
    steps[1]()
    explanations.append(f"- {label}, inference: {module.explain()}")
    return train, kernel()


def run_homogeneous(name: str, cell: str, repeats: int, with_jax: bool, explanations: list[str]) -> list[Row]:
    """Rows of one config and cell: torch's ways, ours, then the JAX peers; × ref against torch fused."""
    c = CONFIGS[name]
    x, lengths = batch(c)
    tokens = int(lengths.sum())
    directions = [(cell, c["H"])] * 2
    per_token = token_flops(directions, c, train=True)
    functions, ours = peers(cell, c, lengths)
    labels, candidates, kinds = [], [], []
    for label, fn in functions.items():
        steps = torch_steps(fn, x)
        kernel = ("packed", "packed") if label == "torch packed" else ("padded", "padded")
        if label in OURS:
            kernel = _kernels(ours, steps, explanations, f"({name}) {cell}")
        candidates.append(steps)
        kinds.append(kernel)
        labels.append(label)
    skipped = []
    if with_jax:
        for label, peer in jax_peers(cell, c, x.numpy(), lengths.numpy() if c["variable"] else None).items():
            if isinstance(peer, str):
                skipped.append((label, peer))
            else:
                labels.append(label)
                candidates.append(peer)
                kinds.append(("padded", "padded"))
    times = timed_interleaved(candidates, repeats)
    correct_labels = CORRECT_ON_VARYING if c["variable"] else TORCH_ROWS
    ok = [t for label, t in zip(labels, times, strict=True) if label in correct_labels]
    correct = (fastest(ok, 0), fastest(ok, 1))
    rows = []
    for label, timing, (train_kernel, infer_kernel) in zip(labels, times, kinds, strict=True):
        run = computed_tokens(train_kernel, c, tokens)
        shown = f"{train_kernel} / {infer_kernel}" if label in OURS else ""
        rows.append(Row(name, cell, label, tokens, timing, times[0], correct, per_token * run, shown))
    for label, why in skipped:
        print(f"({name}) {cell} {label}: {why}", file=sys.stderr)
    return rows


def run_heterogeneous(name: str, directions: list[tuple[str, int]], repeats: int, explanations: list[str]):
    """Rows of directions of different cells or sizes, × ref against the bare unidirectional runs.

    -> (rows, [(label, implementation, train ours/bare time, inference ours/bare time)])
    """
    c = CONFIGS[name]
    x, lengths = batch(c)
    tokens = int(lengths.sum())
    label = " / ".join(f"{k} H={h}" for k, h in directions)
    per_token = token_flops(directions, c, train=True)
    bare, ours = hetero_peers(directions, c, x, lengths)
    steps, kinds = [], []
    for ours_label, module in ours.items():
        pair = torch_steps(lambda x, m=module: m(x, lengths).output, x)
        steps.append(pair)
        kinds.append(_kernels(module, pair, explanations, f"({name}) {label}, {ours_label}"))
    reference, *times_ours = timed_interleaved([bare, *steps], repeats)
    padded = per_token * c["B"] * c["T"]
    bare_row = "bare fwd + bwd torch modules (sum)"
    rows = [Row(name, label, bare_row, tokens, reference, reference, (reference, reference), padded)]
    ratios = []
    for ours_label, times, (train_kernel, infer_kernel) in zip(ours, times_ours, kinds, strict=True):
        kernel = f"{train_kernel} / {infer_kernel}"
        flops = hetero_flops(train_kernel, directions, c, tokens)
        rows.append(Row(name, label, ours_label, tokens, times, reference, (reference, reference), flops, kernel))
        ratios.append((label, ours_label, 1 / times.speedup(reference, 0), 1 / times.speedup(reference, 1)))
    return rows, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="configs (a) and (b) only, 2 rounds")
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds per configuration")
    parser.add_argument("--no-jax", action="store_true", help="skip the Keras and Flax peers")
    parser.add_argument("--avx2", action="store_true", help="cap the libraries at AVX2 (section bench_birnn_avx2)")
    import _report

    _report.add_option(parser)
    args = parser.parse_args()
    repeats = 2 if args.quick else args.rounds
    torch.manual_seed(0)
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="bench_birnn-")  # kernels measured in this run
    recording = _report.Recording()
    threads = torch.get_num_threads()
    peaks: list[tuple[float, int]] = []
    rows: list[Row] = []
    ratios: list[tuple] = []
    explanations: list[str] = []
    plan = [("a", "lstm"), ("b", "lstm"), ("b", "gru"), ("b", "rnn_tanh"), *(("b", d) for d in HETERO)]
    if not args.quick:
        plan.append(("c", "lstm"))
    for name, what in plan:
        peaks.append(gemm_peak())
        print(f"({name}) {what}: GEMM {peaks[-1][0] / 1e9:.0f} GFLOP/s", file=sys.stderr, flush=True)
        if isinstance(what, str):
            rows += run_homogeneous(name, what, repeats, not args.no_jax, explanations)
        else:
            new_rows, new_ratios = run_heterogeneous(name, list(what), repeats, explanations)
            rows += new_rows
            ratios += new_ratios
    peak, size = max(peaks)
    low = min(p for p, _ in peaks)
    print(f"# BiRNN speed — {machine()}; {describe(threads)}\n")
    print(
        f"float32 GEMM peak: {peak / 1e9:.0f} GFLOP/s, the best `torch.matmul` of n×n matrices (n = {size}; "
        f"sizes {', '.join(map(str, PEAK_SIZES))}) at {threads} threads, over {len(peaks)} measurements "
        f"(the slowest {low / 1e9:.0f} GFLOP/s); {'; '.join(blas())}.\n"
    )
    print(
        "| config | cell | implementation | train tok/s | × ref | × correct | % peak | infer tok/s | × ref "
        "| × correct | kernel (train / infer) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for line in rows:
        print(line.line(peak))
    if any(100 * r.train_flops / r.timing.best[0] / peak > 100 for r in rows):
        print("\n† faster than every GEMM measurement of the run: the peak was measured in a slower moment.")
    print(f"\nSpread of the birnn rows' × correct over the {repeats} rounds (lowest–highest round):")
    for r in rows:
        if r.label in OURS:
            train, infer = (r.timing.speedups(r.correct[i], i) for i in (0, 1))
            print(f"- ({r.config}) {r.cell}, {r.label}: train {min(train):.2f}–{max(train):.2f}, "
                  f"inference {min(infer):.2f}–{max(infer):.2f}")
    print("\nFLOPs per computed token (padded kernels compute B·T tokens, packed ones and hand-bptt the valid ones):")
    for name, c in CONFIGS.items():
        if name == "c" and args.quick:
            continue
        for cell in ("lstm", "gru", "rnn_tanh") if c["variable"] else ("lstm",):
            d = [(cell, c["H"])] * 2
            print(
                f"- ({name}) {cell}: train {token_flops(d, c, True) / 1e6:.2f} MFLOP with the input gradient "
                f"({token_flops(d, c, True, input_grad=False) / 1e6:.2f} without), "
                f"inference {token_flops(d, c, False) / 1e6:.2f}"
            )
    print("\nHeterogeneous directions at (b), ours ÷ bare unidirectional time (target: within 1.10×):")
    for label, ours_label, train, infer in ratios:
        print(f"- {label}, {ours_label}: train {train:.2f}×, inference {infer:.2f}×")
    print("\nKernels BiRNN and Bidirectional measured in this run (first call of each configuration; one call each):")
    for line in explanations:
        print(line)
    _report.finish(args, "bench_birnn_avx2" if args.avx2 else "bench_birnn", recording, peers=("jax", "flax", "keras"))


if __name__ == "__main__":
    main()
