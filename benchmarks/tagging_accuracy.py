"""The tagging tables: each preset over several seeds (mean ± sd) and its ablations, on the real corpora.

    python benchmarks/tagging_accuracy.py                          # both presets, 3 seeds, ablations
    python benchmarks/tagging_accuracy.py --only ner --seeds 1 --no-ablation

Every row is a run directory under ``--root`` named ``PRESET-VARIANT-sSEED``; a finished one
(``table.json`` beside its checkpoints) is read, not retrained, a killed one is resumed, so the
whole table can be built over several sessions and the script re-run at any time. A run made
elsewhere with the same settings can be adopted by linking it under that name. Dev scores are
the best epoch's (the model selection metric); test scores are those of the ``best/`` weights.

Ablations (one seed each, the first): ``no-chars`` (no character encoder), ``no-wdrop`` (no
singleton word dropout), and ``no-crf`` for the NER preset or ``crf`` for the UPOS preset (which
has none). Training time is the training loops' sum (dev evaluation excluded) from metrics.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from _report import Recording, add_option, finish
from birnn.experiments.tagging import TagRun, run_tagger

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
FILES = {
    "upos": ("ud_english_ewt/en_ewt-ud-train.conllu.gz", "ud_english_ewt/en_ewt-ud-dev.conllu.gz",
             "ud_english_ewt/en_ewt-ud-test.conllu.gz"),
    "ner": ("wnut17/wnut17train.conll", "wnut17/emerging.dev.conll", "wnut17/emerging.test.annotated"),
}
ABLATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "upos": {"no-chars": {"model.chars": "none"}, "no-wdrop": {"model.word_dropout": 0.0},
             "crf": {"model.crf": True}},
    "ner": {"no-chars": {"model.chars": "none"}, "no-wdrop": {"model.word_dropout": 0.0},
            "no-crf": {"model.crf": False}},
}
SCORES = {"upos": ("accuracy", "accuracy_known", "accuracy_unknown"), "ner": ("f1", "precision", "recall")}


def tag_run(preset: str, changes: dict[str, Any], seed: int, data: Path) -> TagRun:
    train, dev, test = (data / name for name in FILES[preset])
    settings = {path.replace("model.", "").replace("train.", ""): value for path, value in changes.items()}
    return TagRun.build(train, preset, dev_file=dev, test_file=test, seed=seed, **settings)


def finished_run(run: TagRun, out: Path) -> dict[str, Any]:
    """The scores of the run in ``out``: read from table.json, else trained (or resumed) first."""
    table = out / "table.json"
    if table.exists():
        return json.loads(table.read_text())
    result = run_tagger(run, out, resume=(out / "checkpoint").exists(), progress=False,
                        log=lambda line: print(f"  {out.name}: {line}", file=sys.stderr))
    assert result is not None  # one process: the main rank
    with (out / "metrics.csv").open() as rows:
        seconds = sum(float(row["seconds"]) for row in csv.DictReader(rows))
    scores = {"dev": result["best_dev"], "test": result["test"], "train_seconds": seconds}
    table.write_text(json.dumps(scores, indent=1))
    return scores


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def table_rows(preset: str, seeds: int, ablation: bool, root: Path, data: Path) -> list[str]:
    variants = {"preset": {}} | (ABLATIONS[preset] if ablation else {})
    main, *extra = SCORES[preset]
    rows = []
    for variant, changes in variants.items():
        runs = range(seeds) if variant == "preset" else range(1)
        scores = [finished_run(tag_run(preset, changes, s, data), root / f"{preset}-{variant}-s{s}") for s in runs]
        tests = [s["test"] for s in scores]
        cells = [mean_sd([s["dev"] for s in scores]), mean_sd([t[main] for t in tests])]
        cells += [mean_sd([t[key] for t in tests]) for key in extra]
        minutes = statistics.mean(s["train_seconds"] for s in scores) / 60
        rows.append(f"| {preset} | {variant} | {len(scores)} | " + " | ".join(cells) + f" | {minutes:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/tagging-table"),
                        help="run directories [runs/tagging-table]")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared corpora [../shared/data]")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each preset row [3]")
    parser.add_argument("--only", choices=sorted(FILES), help="one preset only")
    parser.add_argument("--no-ablation", action="store_true", help="the preset rows only")
    add_option(parser)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1; got {args.seeds}")
    args.root.mkdir(parents=True, exist_ok=True)
    recording = Recording()
    print("# Tagging accuracy: presets over seeds (mean ± sd) and ablations (first seed)\n")
    for preset in [args.only] if args.only else sorted(FILES, reverse=True):
        main_score, *extra = SCORES[preset]
        print(f"\n`--preset {preset}`: dev = best epoch's {main_score}; test = best/ weights\n")
        print(f"| preset | variant | seeds | dev {main_score} | test {main_score} | "
              + " | ".join(f"test {k}" for k in extra) + " | train min |")
        print("|---|---|---:|---:|---:|" + "---:|" * len(extra) + "---:|")
        for row in table_rows(preset, args.seeds, not args.no_ablation, args.root, args.data):
            print(row)
    finish(args, "tagging_accuracy", recording, peers=("seqeval",))


if __name__ == "__main__":
    main()
