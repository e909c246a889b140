"""The MR table: 10-fold cross-validation of the classifier presets against Naive Bayes on the same folds.

    python benchmarks/classify_accuracy.py                      # trains what is missing, then the table
    python benchmarks/classify_accuracy.py --presets mr-nb --no-report
    python benchmarks/classify_accuracy.py --pooling --models lstm --no-report   # one share of the pooling grid

Rows: binarised multinomial Naive Bayes over 1- and 1–2-grams (add-1 smoothing, log prior; no
network, from ``birnn.tasks.log_count_ratios``), and each ``birnn train classify`` preset, one run
directory ``--root/PRESET`` each. A finished cross-validation (``cv.json`` of every fold) is read,
an interrupted or shortened one continued, a missing one trained, so the table can be re-run at
any time. Every row uses the preset's folds (``split_seed`` 0), so the rows differ only in the
model. Minutes are the folds' wall-clock training and scoring time as measured when they ran.

``--pooling`` adds the table of pooling choices: the ``mr`` preset with each ``--pool`` for the
BiLSTM and for a left-to-right LSTM of the same width (``--model lstm``: 2 × 100 units), one run
directory ``--root/mr-POOL-MODEL`` each (the BiLSTM with max pooling is the ``mr`` row's run).
``--models`` and ``--pools`` train a share of the grid, so that two processes can split it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _report  # noqa: E402
from birnn.data.batching import pad  # noqa: E402
from birnn.data.textclass import ngrams  # noqa: E402
from birnn.data.vocab import Vocab  # noqa: E402
from birnn.experiments.classify import PRESETS, ClassifyRun, run_classifier, stratified_folds  # noqa: E402
from birnn.nn.pooling import POOLS  # noqa: E402
from birnn.tasks.log_count_ratios import sentence_counts, sentence_scores  # noqa: E402

POOLING_MODELS = {"bilstm": "BiLSTM: 100 units per direction",
                  "lstm": "LSTM: one left-to-right LSTM of 200 units, as wide as the BiLSTM's output"}
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentence_polarity"


def naive_bayes_accuracy(examples: list, folds: list[np.ndarray], n: int) -> list[float]:
    """Test accuracy per fold of binarised multinomial NB over 1- to n-grams: argmax_k log p(k) + s_k(x)."""
    labels = sorted({y for _, y in examples})
    accuracies = []
    for held in folds:
        held_set = set(held.tolist())
        train = [e for i, e in enumerate(examples) if i not in held_set]
        features = [ngrams(tokens, n) for tokens, _ in train]
        vocab = Vocab(sorted({f for sentence in features for f in sentence}))
        y = [labels.index(label) for _, label in train]
        table = torch.from_numpy(sentence_counts([vocab.encode(f) for f in features], y, len(vocab), len(labels)))
        test = [examples[i] for i in held]
        padded, _ = pad([vocab.encode(ngrams(tokens, n)) for tokens, _ in test])
        prior = torch.log(torch.bincount(torch.tensor(y), minlength=len(labels)).double() / len(y))
        predicted = (sentence_scores(table, padded, 1.0) + prior).argmax(1)
        gold = torch.tensor([labels.index(label) for _, label in test])
        accuracies.append(float((predicted == gold).double().mean()))
    return accuracies


def cross_validation(data: Path, out: Path, preset: str, **settings: object) -> dict:
    """The finished cross-validation in ``out`` (``cv.json`` of every fold), continued or trained if needed."""
    run = ClassifyRun.build([data], preset, **settings)
    done = out / "cv.json"
    result = json.loads(done.read_text()) if done.is_file() else {"folds": []}
    if len(result["folds"]) < run.cv:  # missing, interrupted, or a --max-folds run: the rest of its folds
        result = run_classifier(run, out, resume=out.exists(), progress=False,
                                log=lambda line: print(line, file=sys.stderr))
    return result


def accuracy(result: dict) -> str:
    values = [100 * f["test"]["accuracy"] for f in result["folds"]]
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def row(name: str, accuracies: list[float], macro: list[float] | None = None, minutes: float | None = None) -> str:
    pct = [100 * a for a in accuracies]
    macro_text = f"{100 * statistics.mean(macro):.2f}" if macro else "—"
    time_text = f"{minutes:.1f}" if minutes is not None else "—"
    return (f"| {name} | {statistics.mean(pct):.2f} ± {statistics.stdev(pct):.2f} | {min(pct):.2f} | {max(pct):.2f} "
            f"| {macro_text} | {time_text} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the sentence polarity folder")
    parser.add_argument("--root", type=Path, default=Path("runs/classify-table"), help="run directories")
    parser.add_argument("--presets", nargs="+", default=sorted(PRESETS), choices=sorted(PRESETS))
    parser.add_argument("--pooling", action="store_true", help="also the table of pooling choices")
    parser.add_argument("--models", nargs="+", default=list(POOLING_MODELS), choices=list(POOLING_MODELS))
    parser.add_argument("--pools", nargs="+", default=list(POOLS), choices=list(POOLS))
    _report.add_option(parser)
    args = parser.parse_args()
    recording = _report.Recording()
    results = {preset: cross_validation(args.data, args.root / preset, preset) for preset in args.presets}
    pooling = {}
    if args.pooling:
        for model in args.models:
            for pool in args.pools:
                out = args.root / ("mr" if (model, pool) == ("bilstm", "max") else f"mr-{pool}-{model}")
                pooling[model, pool] = cross_validation(args.data, out, "mr", pool=pool, model=model)
    run = ClassifyRun.build([args.data], args.presets[0])
    examples = run.read(run.train_files).examples
    folds = stratified_folds([y for _, y in examples], run.cv, run.split_seed)
    print(f"MR (sentence polarity, {len(examples):,} sentences), stratified {run.cv}-fold cross-validation, "
          f"split seed {run.split_seed}; test accuracy over folds (mean ± sample sd), macro-F1 mean\n")
    print("| model | accuracy | worst fold | best fold | macro-F1 | minutes |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in (1, 2):
        print(row(f"Naive Bayes, 1–{n}-grams" if n > 1 else "Naive Bayes, unigrams",
                  naive_bayes_accuracy(examples, folds, n)))
    for preset, result in results.items():
        folds_done = result["folds"]
        print(row(f"`--preset {preset}`", [f["test"]["accuracy"] for f in folds_done],
                  [f["test"]["macro_f1"] for f in folds_done], sum(f["seconds"] for f in folds_done) / 60))
    if pooling:
        models = [m for m in POOLING_MODELS if any(key[0] == m for key in pooling)]
        described = "; ".join(POOLING_MODELS[m] for m in models)
        print(f"\nPooling, `--preset mr` with `--pool P`, 10-fold test accuracy ({described}):\n")
        print("| pool | " + " | ".join(POOLING_MODELS[m].split(":")[0] for m in models) + " |")
        print("|---|" + "---:|" * len(models))
        for pool in POOLS:
            if any((m, pool) in pooling for m in models):
                print(f"| {pool} | " + " | ".join(accuracy(pooling[m, pool]) if (m, pool) in pooling else "—"
                                                 for m in models) + " |")
    _report.finish(args, "classify_accuracy", recording)


if __name__ == "__main__":
    main()
