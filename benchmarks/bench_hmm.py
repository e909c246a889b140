"""birnn.hmm against hmmlearn's fastest setting (CategoricalHMM, implementation="scaling").

Same model, same data, same machine, same run. Prints a markdown table of the
best-of-3 wall times and the ratio hmmlearn / birnn (above 1: birnn is faster).

    python benchmarks/bench_hmm.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402
from birnn.hmm import HMM  # noqa: E402


def random_hmm(k: int, v: int, seed: int = 0) -> HMM:
    rng = np.random.default_rng(seed)
    return HMM(
        rng.dirichlet(np.ones(k)),
        rng.dirichlet(np.ones(k), size=k) + 0.0,
        rng.dirichlet(np.ones(v), size=k),
    )


def hmmlearn_model(hmm: HMM):
    from hmmlearn.hmm import CategoricalHMM

    model = CategoricalHMM(n_components=hmm.n_states, implementation="scaling", init_params="", params="")
    model.n_features = hmm.n_symbols
    model.startprob_, model.transmat_, model.emissionprob_ = hmm.start, hmm.transition, hmm.emission
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K=2 and 16 only, shorter data")
    import _report

    _report.add_option(parser)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sizes = [(2, 6), (16, 50)] if args.quick else [(2, 6), (16, 50), (128, 1000)]
    shapes = [(100, 1_000), (1, 100_000)] if not args.quick else [(20, 500), (1, 20_000)]
    recording = _report.Recording()
    print(f"# birnn.hmm vs hmmlearn (scaling) — {machine()}\n")
    print("| K | V | data | operation | hmmlearn s | birnn s | hmmlearn / birnn |")
    print("|---:|---:|---|---|---:|---:|---:|")
    for k, v in sizes:
        hmm = random_hmm(k, v)
        model = hmmlearn_model(hmm)
        for n, steps in shapes:
            obs, _ = hmm.sample(n, steps, seed=1)
            column = obs.reshape(-1, 1)
            lengths = [steps] * n
            operations = {
                "log-likelihood": (hmm.log_likelihood, model.score),
                "posteriors": (hmm.posterior, model.predict_proba),
                "Viterbi": (hmm.viterbi, model.decode),
            }
            for name, (ours, theirs) in operations.items():
                t_ours = best_time(ours, obs)
                t_theirs = best_time(theirs, column, lengths)
                print(
                    f"| {k} | {v} | {n} × {steps:,} | {name} | {t_theirs:.4f} | {t_ours:.4f} | "
                    f"{t_theirs / t_ours:.2f}× |",
                    flush=True,
                )
    _report.finish(args, "bench_hmm", recording, peers=("hmmlearn", "numba"))


if __name__ == "__main__":
    main()
