"""The NumPy reference engine against torch's fused ``nn.LSTM(bidirectional=True)``, in one run.

Train step (forward + backward; the input needs no gradient in either) and inference
(torch under ``no_grad``, NumPy with ``forward(..., keep_cache=False)``), tokens/s,
float32 and float64; ratio = birnn.reference throughput / torch fused throughput.
Best of 4 alternating bursts of 3 warm calls each.

    python benchmarks/bench_reference.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402
from birnn.reference import BiRNN  # noqa: E402

CONFIGS = {
    "tagger I=100 H=128 L=1 B=64 T=50": dict(I=100, H=128, L=1, B=64, T=50),
    "d2l I=28 H=256 L=2 B=32 T=35": dict(I=28, H=256, L=2, B=32, T=35),
}


def interleaved(candidates: list, repeats: int) -> list[float]:
    """Best seconds of each candidate: bursts of a warm-up call and 3 timed calls, alternating.

    Each burst runs warm (as consecutive training steps do); alternating the bursts
    keeps the ratios meaningful when the machine's speed drifts during the run.
    """
    best = [float("inf")] * len(candidates)
    for _ in range(repeats):
        for i, fn in enumerate(candidates):
            fn()
            best[i] = min(best[i], best_time(fn, repeats=3))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 alternations instead of 4")
    import _report

    _report.add_option(parser)
    args = parser.parse_args()
    repeats = 2 if args.quick else 4
    recording = _report.Recording()
    print(f"# NumPy reference engine vs torch fused — {machine()}\n")
    print(
        "| config | dtype | torch train tok/s | numpy train tok/s | ratio "
        "| torch infer tok/s | numpy infer tok/s | ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, c in CONFIGS.items():
        for np_dtype, torch_dtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
            torch.manual_seed(0)
            module = torch.nn.LSTM(c["I"], c["H"], c["L"], bidirectional=True, batch_first=True).to(torch_dtype)
            model = BiRNN.from_torch(module, dtype=np_dtype)
            x = torch.randn(c["B"], c["T"], c["I"], dtype=torch_dtype)
            x_np = x.numpy()
            d_out = np.ones((c["B"], c["T"], 2 * c["H"]), dtype=np_dtype)
            tokens = c["B"] * c["T"]

            def torch_train(module=module, x=x):
                module(x)[0].sum().backward()

            def torch_infer(module=module, x=x):
                with torch.no_grad():
                    module(x)

            def numpy_train(model=model, x_np=x_np, d_out=d_out):
                model.forward(x_np)
                model.backward(d_out, input_grad=False)  # as torch: x needs no gradient

            def numpy_infer(model=model, x_np=x_np):
                model.forward(x_np, keep_cache=False)

            t_train, n_train, t_infer, n_infer = interleaved(
                [torch_train, numpy_train, torch_infer, numpy_infer], repeats
            )
            print(
                f"| {name} | {np.dtype(np_dtype).name} | {tokens / t_train:,.0f} | {tokens / n_train:,.0f} | "
                f"{t_train / n_train:.2f}× | {tokens / t_infer:,.0f} | {tokens / n_infer:,.0f} | "
                f"{t_infer / n_infer:.2f}× |",
                flush=True,
            )
    _report.finish(args, "bench_reference", recording)


if __name__ == "__main__":
    main()
