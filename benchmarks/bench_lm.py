"""birnn's training loop against d2l's own ``train_ch8`` on d2l's bidirectional-RNN chapter, in one run.

The setting of d2l (v0.17) §9.4: The Time Machine, first 10,000 characters, char
vocabulary, batch 32, 35 steps, sequential partitioning (state carried across
batches), one-hot input, hidden 256, 2 layers, SGD, gradient clipping θ=1;
LSTM with lr 2 and BiLSTM with lr 1. Both peers train on all 10,000 characters
(no held-out part) for ``--epochs`` epochs with the same number of torch threads.

- birnn: ``LanguageModelTask`` (partition "sequential") + ``Trainer``, in this process;
  BiLSTM is ``birnn.nn.BiRNN``, LSTM is ``torch.nn.LSTM``.
- d2l: ``d2l.RNNModel(nn.LSTM(len(vocab), 256, 2[, bidirectional=True]), len(vocab))``
  and ``d2l.train_ch8(model, train_iter, vocab, lr, epochs, device)`` with
  ``d2l.load_data_time_machine(32, 35)``, run in a subprocess by the Python of
  ``--d2l-python`` or ``$D2L_PYTHON`` (this file, ``--d2l-peer``). ``train_ch8``
  prints only the last epoch's speed; every epoch's is recorded by wrapping
  ``d2l.train_epoch_ch8`` (its computation unchanged). d2l reads the text from its
  cache ``../data/timemachine.txt``; the peer puts ``--data`` there (its SHA-1
  must be d2l's, else d2l would try to download it).

tokens/s = all epochs' tokens ÷ their summed loop time (data, forward, backward,
clipping, step; not birnn's checkpoints, not d2l's plots); "last epoch" is the
number ``train_ch8`` prints. Perplexity: exp(mean training loss of the last epoch),
as both report it. The two runs differ in initialisation and birnn's vocabulary
has a ``<pad>`` symbol (29 vs 28), so their perplexities agree only roughly.

    python benchmarks/bench_lm.py --data PATH/timemachine.txt --d2l-python /work/d2l-venv/bin/python
    python benchmarks/bench_lm.py --data ... --epochs 20 --repeats 3   # best of 3, interleaved

d2l 0.17.6 is the last release with ``train_ch8``/``RNNModel`` (1.x replaced
them). Its pins (numpy 1.21, jupyter, ...) do not fit Python 3.11, so install it
without dependencies, beside the same torch and what ``d2l.torch`` imports:

    python3 -m venv /work/d2l-venv
    echo 'torch==2.13.0+cpu' > constraints.txt      # never let pip pull another torch
    /work/d2l-venv/bin/pip install -c constraints.txt torch==2.13.0+cpu
    /work/d2l-venv/bin/pip install -c constraints.txt --no-deps d2l==0.17.6
    /work/d2l-venv/bin/pip install -c constraints.txt pandas requests ipython matplotlib matplotlib-inline pillow

``d2l.torch`` also imports torchvision (for its image chapters; ``train_ch8``
never uses it). PyPI's torchvision wheel links CUDA torch and fails beside the
CPU build ("operator torchvision::nms does not exist"), so leave it out: the
peer then puts an empty ``torchvision`` module in ``sys.modules`` before
importing d2l, and says so under the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

import torch

MAX_TOKENS, BATCH, STEPS, HIDDEN, LAYERS, CLIP = 10_000, 32, 35, 256, 2, 1.0
LR = {"lstm": 2.0, "bilstm": 1.0}
_RESULT = "BENCH_LM_RESULT "  # prefix of the peer's one JSON line on stdout


@dataclass(frozen=True)
class Run:
    """One training run: per-epoch tokens and loop seconds, last-epoch training perplexity."""

    tokens: list[int]
    seconds: list[float]
    perplexity: float

    @property
    def tokens_per_s(self) -> float:
        return sum(self.tokens) / sum(self.seconds)

    @property
    def last_tokens_per_s(self) -> float:
        return self.tokens[-1] / self.seconds[-1]


# ----- birnn, in this process ------------------------------------------------------------------------
def run_birnn(model: str, data: Path, epochs: int, seed: int) -> Run:
    """Our Trainer on the LM task with d2l's settings (as ``birnn train lm --preset d2l --heldout 0``)."""
    from birnn.data.streams import sequential_partition
    from birnn.data.timemachine import load_characters
    from birnn.tasks.language_model import LanguageModelTask, LMConfig
    from birnn.train import TrainConfig, Trainer

    text = load_characters(data, MAX_TOKENS)
    task = LanguageModelTask.for_text(LMConfig(model, HIDDEN, LAYERS, 0, seed, "sequential"), text)
    ids = task.vocab.encode(text)
    config = TrainConfig(
        epochs=epochs, batch_size=BATCH, optimizer="sgd", lr=LR[model], clip=CLIP, seed=seed, shuffle=False
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(
            task,
            lambda epoch: sequential_partition(ids, BATCH, STEPS, seed, epoch),
            None,
            config,
            run_dir,
            progress=False,
        )
        trainer.fit()
    rows = trainer.history
    return Run([row["tokens"] for row in rows], [row["seconds"] for row in rows], math.exp(rows[-1]["train_loss"]))


# ----- d2l, in a subprocess with its own Python ------------------------------------------------------
def run_d2l(python: str, model: str, data: Path, epochs: int, seed: int, threads: int) -> tuple[Run | None, dict]:
    """(run, details) of d2l's train_ch8 in ``python``; run is None and details["error"] says why on failure."""
    command = [python, "-W", "ignore", __file__, "--d2l-peer", "--models", model, "--data", str(data)]
    command += ["--epochs", str(epochs), "--seed", str(seed), "--threads", str(threads)]
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return None, {"error": f"{python} exited with {done.returncode}: {tail}"}
    details = json.loads(lines[-1][len(_RESULT) :])
    details["printed"] = next((line for line in done.stdout.splitlines() if line.startswith("perplexity ")), "")
    return Run(details["tokens"], details["seconds"], details["perplexity"]), details


def _import_d2l() -> tuple[types.ModuleType, str]:
    """``d2l.torch`` and a note; an empty torchvision module stands in if the real one does not import."""
    note = ""
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # e.g. PyPI's CUDA-linked wheel beside CPU torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        stub = types.ModuleType("torchvision")
        stub.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
        sys.modules |= {"torchvision": stub, "torchvision.transforms": stub.transforms}  # type: ignore[attr-defined]
        note = f"torchvision did not import ({type(error).__name__}: {str(error)[:80]}); an empty module stood in"
    from d2l import torch as d2l

    return d2l, note


def d2l_peer(model: str, data: Path, epochs: int, seed: int, threads: int) -> None:
    """Run d2l's own loop and print one JSON line: per-epoch tokens and seconds, perplexity, versions."""
    import random

    from torch import nn

    d2l, note = _import_d2l()
    import d2l as d2l_package

    torch.set_num_threads(threads)
    random.seed(seed)  # d2l's random window offsets
    torch.manual_seed(seed)
    expected = d2l.DATA_HUB["time_machine"][1]
    if hashlib.sha1(data.read_bytes()).hexdigest() != expected:
        sys.exit(f"{data} is not d2l's timemachine.txt (SHA-1 {expected})")
    epochs_seen: list[dict] = []
    train_epoch = d2l.train_epoch_ch8

    def timed_epoch(net, train_iter, *rest):  # train_ch8 calls this through the module's globals
        tokens = 0

        def counted():
            nonlocal tokens
            for X, Y in train_iter:
                tokens += Y.numel()
                yield X, Y

        start = time.perf_counter()
        perplexity, speed = train_epoch(net, counted(), *rest)
        epochs_seen.append({"tokens": tokens, "seconds": time.perf_counter() - start, "perplexity": perplexity})
        return perplexity, speed

    d2l.train_epoch_ch8 = timed_epoch
    with tempfile.TemporaryDirectory() as root:  # d2l.download looks in ../data
        (Path(root) / "data").mkdir()
        (Path(root) / "run").mkdir()
        shutil.copyfile(data, Path(root) / "data" / "timemachine.txt")
        cwd = Path.cwd()
        os.chdir(Path(root) / "run")
        try:
            train_iter, vocab = d2l.load_data_time_machine(BATCH, STEPS, max_tokens=MAX_TOKENS)
        finally:
            os.chdir(cwd)
        layer = nn.LSTM(len(vocab), HIDDEN, LAYERS, bidirectional=model == "bilstm")
        net = d2l.RNNModel(layer, len(vocab))
        d2l.train_ch8(net, train_iter, vocab, LR[model], epochs, d2l.try_gpu())
    result = {
        "tokens": [e["tokens"] for e in epochs_seen],
        "seconds": [e["seconds"] for e in epochs_seen],
        "perplexity": epochs_seen[-1]["perplexity"],
        "vocab": len(vocab),
        "d2l": d2l_package.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "note": note,
    }
    print(_RESULT + json.dumps(result), flush=True)


# ----- the table -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="d2l's timemachine.txt")
    parser.add_argument("--epochs", type=int, default=5, help="per run [5; d2l's chapter 500]")
    parser.add_argument("--models", default="lstm,bilstm", help="comma-separated: lstm, bilstm")
    parser.add_argument("--d2l-python", default=os.environ.get("D2L_PYTHON"), help="Python with d2l 0.17 [$D2L_PYTHON]")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of both peers")
    parser.add_argument("--repeats", type=int, default=1, help="best tokens/s of this many runs, order alternated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--d2l-peer", action="store_true", help=argparse.SUPPRESS)  # the subprocess's role
    import _report  # beside this file, on sys.path when run as a script

    _report.add_option(parser)
    args = parser.parse_args()
    models = args.models.split(",")
    if unknown := set(models) - set(LR):
        parser.error(f"--models must be among {sorted(LR)}; got {sorted(unknown)}")
    if args.epochs < 1 or args.repeats < 1 or args.threads < 1:
        parser.error(f"--epochs, --repeats, --threads must be >= 1; got {args.epochs}, {args.repeats}, {args.threads}")
    if args.d2l_peer:
        d2l_peer(models[0], args.data, args.epochs, args.seed, args.threads)
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from _timing import machine

    torch.set_num_threads(args.threads)
    skipped = "" if args.d2l_python else "no --d2l-python given and $D2L_PYTHON unset"
    best: dict[tuple[str, str], Run] = {}
    details: dict[str, dict] = {}
    for repeat in range(args.repeats):
        for model in models:
            order = ("birnn", "d2l") if repeat % 2 == 0 else ("d2l", "birnn")
            for implementation in order:
                if implementation == "birnn":
                    run: Run | None = run_birnn(model, args.data, args.epochs, args.seed)
                elif skipped:
                    continue
                else:
                    run, details[model] = run_d2l(
                        args.d2l_python, model, args.data, args.epochs, args.seed, args.threads
                    )
                    if run is None:
                        skipped = details[model]["error"]
                        continue
                key = (model, implementation)
                if key not in best or run.tokens_per_s > best[key].tokens_per_s:
                    best[key] = run

    n = args.epochs
    recording = _report.Recording()
    print(f"# birnn Trainer vs d2l train_ch8, The Time Machine LM — {machine()}\n")
    print(
        f"{n} epoch(s) over {MAX_TOKENS:,} characters, batch {BATCH}, {STEPS} steps, hidden {HIDDEN}, {LAYERS} layers, "
        f"SGD (lstm lr 2, bilstm lr 1), clip {CLIP:g}, {args.threads} torch threads, best of {args.repeats}.\n"
    )
    print(
        "| model | implementation | tokens/s, all epochs | last epoch tokens/s | ratio to d2l | training perplexity |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for model in models:
        reference = best.get((model, "d2l"))
        for implementation in ("birnn", "d2l"):
            run = best.get((model, implementation))
            if run is None:
                print(f"| {model} | {implementation} | skipped | | | |")
                continue
            ratio = f"{run.tokens_per_s / reference.tokens_per_s:.2f}" if reference else "n/a"
            print(
                f"| {model} | {implementation} | {run.tokens_per_s:,.0f} | {run.last_tokens_per_s:,.0f} | {ratio} "
                f"| {run.perplexity:.2f} |"
            )
    print()
    if skipped:
        print(f"d2l peer skipped: {skipped}.")
        if not args.d2l_python:
            print("Install it as the module docstring says and pass --d2l-python or set D2L_PYTHON.")
    for model, info in details.items():
        if "error" in info:
            continue
        print(
            f"d2l {info['d2l']} ({model}): torch {info['torch']}, {info['threads']} threads, "
            f"vocabulary {info['vocab']}; train_ch8 printed {info['printed']!r}"
        )
        if info["note"]:
            print(f"  {info['note']}")
        if info["torch"] != torch.__version__:
            print(f"  warning: d2l ran torch {info['torch']}, birnn torch {torch.__version__}")
    _report.finish(args, "bench_lm", recording)


if __name__ == "__main__":
    main()
