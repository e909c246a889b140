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
has none); for NER also ``train+dev``, trained on both splits for 15 epochs (the median best
epoch of the preset's seeds on dev), the WNUT-17 shared task's protocol. With ``--bilm RUN`` (a
``birnn train bilm`` run) every seed of the preset is also trained with the biLM's frozen vectors
(``bilm``), and for NER on train + dev with them (``train+dev+bilm``). ``--variants`` trains only
the rows named (several processes can share the work, each with ``--no-report``), ``--section``
names the section of docs/performance.md the table replaces. ``--ensemble K [K ...]`` adds, for
every multi-seed row and each K, a row of ensembles (``birnn ensemble``): the row's seeds in
consecutive groups of K, each group one ensemble (``PRESET-VARIANT-ensK-sFIRST``), scored like a
run; its train min is the sum of its members'. ``--first-seed`` shifts the seeds, so that several
processes can train different seeds of one row. Training time is the
training loops' sum (dev evaluation excluded) from metrics.csv; ``epochs`` lists each seed's
epochs (early stopping ends NER runs before the preset's 40), ``*`` marking a run scored
unfinished under ``--no-train``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from _report import Recording, add_option, finish
from birnn.experiments.tagging import TagRun, run_tagger, score_file
from birnn.train.ensemble import save_ensemble

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
            "no-crf": {"model.crf": False},
            # trained on train + dev for the median best epoch of the preset's seeds on dev
            "train+dev": {"train+dev": True, "train.epochs": 15}},
}
MONITOR = {True: "dev_accuracy", False: "dev_f1"}  # by "no chunk scheme"
SCORES = {"upos": ("accuracy", "accuracy_known", "accuracy_unknown"), "ner": ("f1", "precision", "recall")}


def tag_run(preset: str, changes: dict[str, Any], seed: int, data: Path, root: Path) -> TagRun:
    train, dev, test = (data / name for name in FILES[preset])
    changes = dict(changes)
    if changes.pop("train+dev", False):  # one file of both, no dev split, the epochs fixed
        train, dev = joined(train, dev, root / f"{preset}-train+dev{train.suffix}"), None
    settings = {path.replace("model.", "").replace("train.", ""): value for path, value in changes.items()}
    return TagRun.build(train, preset, dev_file=dev, test_file=test, seed=seed, **settings)


def joined(first: Path, second: Path, out: Path) -> Path:
    """``out``: the sentences of ``first`` then of ``second`` (column files, a blank line between)."""
    if not out.exists():
        out.write_text(first.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + second.read_text(encoding="utf-8"),
                       encoding="utf-8")
    return out


def finished_run(run: TagRun, out: Path, train: bool = True) -> dict[str, Any] | None:
    """The scores of the run in ``out``: read from table.json, else trained (or resumed) first.
    With ``train=False`` an unfinished run is scored as it stands (its ``best/`` weights so far,
    ``epochs`` says how far it got) and a missing one is None."""
    table = out / "table.json"
    if table.exists():
        return json.loads(table.read_text())
    if not train:
        return partial_scores(run, out)
    result = run_tagger(run, out, resume=(out / "checkpoint").exists(), progress=False,
                        log=lambda line: print(f"  {out.name}: {line}", file=sys.stderr))
    assert result is not None  # one process: the main rank
    scores = {"dev": result["best_dev"], "test": result["test"]} | training_time(out)
    table.write_text(json.dumps(scores, indent=1))
    return scores


def training_time(out: Path) -> dict[str, float]:
    """Epochs run and the training loops' seconds, from metrics.csv."""
    with (out / "metrics.csv").open() as lines:
        rows = list(csv.DictReader(lines))
    return {"epochs": len(rows), "train_seconds": sum(float(row["seconds"]) for row in rows)}


def partial_scores(run: TagRun, out: Path) -> dict[str, Any] | None:
    """A run as it stands; finished when it reached its epochs or its patience ran out."""
    if not ((out / "best").exists() or (out / "checkpoint").exists()) or not (out / "metrics.csv").exists():
        return None
    with (out / "metrics.csv").open() as lines:
        dev = [float(row.get(MONITOR[run.model.scheme is None]) or "nan") for row in csv.DictReader(lines)]
    test = score_file(out, run.test_file, run.file_format, run.column)
    if run.dev_file is None:  # no model selection: the last epoch's weights
        return {"dev": None, "test": test, "unfinished": len(dev) < run.train.epochs} | training_time(out)
    best_epoch = dev.index(max(dev)) + 1
    patience = run.train.patience
    done = len(dev) >= run.train.epochs or (patience is not None and len(dev) - best_epoch >= patience)
    return {"dev": max(dev), "test": test, "unfinished": not done} | training_time(out)


def ensemble_scores(preset: str, changes: dict[str, Any], seeds: range, data: Path, root: Path, variant: str,
                    train: bool) -> dict[str, Any] | None:
    """The scores of the ensemble of the runs of ``seeds`` (trained first if missing), or None
    when ``train`` is off and a member is missing."""
    out = root / f"{preset}-{variant}-ens{len(seeds)}-s{seeds[0]}"
    table = out / "table.json"
    if table.exists():
        return json.loads(table.read_text())
    runs = [tag_run(preset, changes, seed, data, root) for seed in seeds]
    directories = [root / f"{preset}-{variant}-s{seed}" for seed in seeds]
    found = [finished_run(run, directory, train) for run, directory in zip(runs, directories, strict=True)]
    members = [member for member in found if member is not None and not member.get("unfinished")]
    if len(members) < len(seeds):
        return None
    if not (out / "best").exists():
        save_ensemble(directories, out)
    run = runs[0]
    dev = score_file(out, run.dev_file, run.file_format, run.column) if run.dev_file else None
    scores = {"dev": dev[SCORES[preset][0]] if dev else None,
              "test": score_file(out, run.test_file, run.file_format, run.column),
              "epochs": "+".join(str(m["epochs"]) for m in members),
              "train_seconds": sum(m["train_seconds"] for m in members)}
    table.write_text(json.dumps(scores, indent=1))
    return scores


def mean_sd(values: list[float | None]) -> str:
    if any(v is None for v in values):
        return "—"
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


MULTI_SEED = ("preset", "bilm", "train+dev", "train+dev+bilm")  # rows over every seed; ablations: the first


def variants_of(preset: str, ablation: bool, bilm: Path | None) -> dict[str, dict[str, Any]]:
    """The rows of a preset's table: name -> the settings it changes."""
    variants: dict[str, dict[str, Any]] = {"preset": {}} | (ABLATIONS[preset] if ablation else {})
    if bilm is not None:
        variants["bilm"] = {"model.bilm": str(bilm)}
        if "train+dev" in ABLATIONS[preset]:
            variants["train+dev+bilm"] = ABLATIONS[preset]["train+dev"] | {"model.bilm": str(bilm)}
    return variants


def table_row(preset: str, variant: str, found: list[dict[str, Any] | None]) -> str:
    main, *extra = SCORES[preset]
    scores = [s for s in found if s is not None]
    if not scores:
        return f"| {preset} | {variant} | 0 | not run |"
    tests = [s["test"] for s in scores]
    cells = [mean_sd([s["dev"] for s in scores]), mean_sd([t[main] for t in tests])]
    cells += [mean_sd([t[key] for t in tests]) for key in extra]
    minutes = statistics.mean(s["train_seconds"] for s in scores) / 60
    epochs = "/".join(str(s["epochs"]) + ("*" if s.get("unfinished") else "") for s in scores)
    return f"| {preset} | {variant} | {len(scores)} | " + " | ".join(cells) + f" | {epochs} | {minutes:.1f} |"


def table_rows(preset: str, seeds: range, variants: dict[str, dict[str, Any]], root: Path, data: Path,
               train: bool, ensembles: Sequence[int] = ()) -> list[str]:
    rows = []
    for variant, changes in variants.items():
        runs = seeds if variant in MULTI_SEED else seeds[:1]
        rows.append(table_row(preset, variant, [
            finished_run(tag_run(preset, changes, seed, data, root), root / f"{preset}-{variant}-s{seed}", train)
            for seed in runs]))
        for size in ensembles if variant in MULTI_SEED else ():
            groups = [runs[i:i + size] for i in range(0, len(runs) - size + 1, size)]
            rows.append(table_row(preset, f"{variant}, ensembles of {size}", [
                ensemble_scores(preset, changes, group, data, root, variant, train) for group in groups]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/tagging-table"),
                        help="run directories [runs/tagging-table]")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared corpora [../shared/data]")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each preset row [3]")
    parser.add_argument("--first-seed", type=int, default=0, help="the first of them [0]")
    parser.add_argument("--ensemble", type=int, nargs="+", metavar="K", default=[],
                        help="also a row of ensembles of K seeds (for each K given) for every multi-seed row")
    parser.add_argument("--only", choices=sorted(FILES), help="one preset only")
    parser.add_argument("--no-ablation", action="store_true", help="the preset rows only")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: score the runs as they stand (unfinished ones marked *)")
    parser.add_argument("--bilm", type=Path, help="a biLM run: adds the bilm (and train+dev+bilm) rows")
    parser.add_argument("--variants", nargs="+", metavar="VARIANT",
                        help="train and print only these rows (e.g. bilm train+dev)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of this process [1]: one per process when several share the cores")
    parser.add_argument("--section", default="tagging_accuracy",
                        help="the section of the report this table replaces [tagging_accuracy]")
    add_option(parser)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1; got {args.seeds}")
    for size in args.ensemble:
        if not 2 <= size <= args.seeds:
            parser.error(f"--ensemble sizes must lie in [2, --seeds={args.seeds}]; got {size}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    torch.set_num_threads(args.threads)
    if args.bilm is not None and not (args.bilm / "summary.json").exists():
        parser.error(f"--bilm {args.bilm}: not a finished biLM run (no summary.json)")
    args.root.mkdir(parents=True, exist_ok=True)
    recording = Recording()
    print("# Tagging accuracy: presets over seeds (mean ± sd) and ablations (first seed)\n")
    for preset in [args.only] if args.only else sorted(FILES, reverse=True):
        main_score, *extra = SCORES[preset]
        print(f"\n`--preset {preset}`: dev = best epoch's {main_score}; test = best/ weights\n")
        print(f"| preset | variant | seeds | dev {main_score} | test {main_score} | "
              + " | ".join(f"test {k}" for k in extra) + " | epochs | train min |")
        print("|---|---|---:|---:|---:|" + "---:|" * len(extra) + "---|---:|")
        variants = variants_of(preset, not args.no_ablation, args.bilm)
        if args.variants:
            unknown = set(args.variants) - set(variants)
            if unknown:
                parser.error(f"--variants: {', '.join(sorted(unknown))} not among {', '.join(variants)}")
            variants = {name: variants[name] for name in args.variants}
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        for row in table_rows(preset, seeds, variants, args.root, args.data, not args.no_train, args.ensemble):
            print(row)
    print(f"\ntrain min: the training loops' time as measured during each run, {args.threads} torch thread(s) per run;"
          " runs that shared the machine with other work take longer than on a quiet one")
    finish(args, args.section, recording, peers=("seqeval",))


if __name__ == "__main__":
    main()
