"""Tagger prediction speed: torch eager against onnxruntime (and spaCy's and flair's taggers when installed).

The same sentences for every engine: UD English EWT test (``--data-dir``, default
``../shared/data``), tokens as strings in, tags out.

- batch 256: ``predict`` over the whole test set (length-sorted batches of 256), best of
  ``--repeats`` passes, the engines' passes taking turns (so a slow spell of a shared machine
  falls on all of them) -> tokens/s; one more pass -> tokens per CPU-second (all threads' CPU
  time: what the engine costs, less distorted than wall time when other work shares the cores).
  onnxruntime encodes each distinct word's characters once and keeps the vector
  (``serve.char_cache``): its cache is emptied before every batch-256 pass, so every word is
  encoded when first met, as in a new process over a file; one more line gives that rate with
  every test word already cached (a long-running service). The batch-1 runs follow the passes,
  with the test words cached, as in a service answering one sentence at a time;
- batch 1: every sentence of the first ``--latency-sentences`` alone -> tokens/s and the
  p50/p99 milliseconds per sentence; "20 tok p50": the median over (up to as many of) the test
  sentences of exactly 20 tokens, each predicted alone;
- onnxruntime int8: the same export with ``--quantize int8`` (``serve.onnx_quantize``), its own
  row, and a line of test accuracy against the gold tags for every birnn engine (what int8 costs);
- end to end: ``birnn predict RUN --input conllu <test file>`` in a new process, from process
  start to exit (imports, loading, reading, featurising, predicting, writing CoNLL).

The tagger is ``--run`` (a ``birnn train tag`` run directory), exported to ONNX in a temporary
directory; without ``--run`` a small UPOS tagger (word ⊕ character BiLSTM) is trained for one
epoch on the first 2,000 EWT training sentences first. Both engines use ``--threads`` threads.

spaCy: ``--spacy-model`` (default ``en_core_web_sm``), its tagger and its tok2vec only, on
``Doc(words=...)`` (our tokens), through ``nlp.pipe(batch_size=...)``. flair: ``--flair-model``
(a path or a model name flair can load), ``tagger.predict(mini_batch_size=...)``. Either is
skipped with the reason when it is not installed or its model cannot be loaded (no download here).

    python benchmarks/bench_predict.py --run runs/upos
    python benchmarks/bench_predict.py --quick            # 300 sentences, no report
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import birnn
from _report import Recording, add_option, finish
from _timing import best_time
from birnn.data import read_tagged
from birnn.serve import OnnxPredictor, Predictor, export
from birnn.train import load_task

ROOT = Path(__file__).resolve().parent.parent
TEST = "ud_english_ewt/en_ewt-ud-test.conllu.gz"
TARGETS = "targets: onnxruntime ≥ 1.5× torch at batch 256, ≥ 100,000 tok/s; 20-token p50 ≤ 2 ms; end to end < 5 s"


def _train_small(data_dir: Path, out: Path, threads: int) -> Path:
    from birnn.experiments.tagging import TagRun, run_tagger

    train = out / "train.conllu"
    with gzip.open(data_dir / "ud_english_ewt/en_ewt-ud-train.conllu.gz", "rt", encoding="utf-8") as source:
        blocks = source.read().split("\n\n")[:2000]
    train.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    run = TagRun.build(train, "upos", epochs=1, layers=1, hidden=100)
    torch.set_num_threads(threads)
    run_tagger(run, out / "run", progress=False, log=lambda line: None)
    return out / "run"


def _latencies(predict: Callable[[list[list[str]]], object], sentences: list[list[str]]) -> list[float]:
    times = []
    for tokens in sentences:
        start = time.perf_counter()
        predict([tokens])
        times.append((time.perf_counter() - start) * 1e3)
    return times


Predict = Callable[[list[list[str]]], object]


def _batch_rates(engines: dict[str, tuple[Predict, Callable[[], None]]], sentences: list[list[str]],
                 repeats: int) -> dict[str, float]:
    """Tokens/s of each engine's best pass over ``sentences``, the engines taking turns pass by pass;
    each (predict, forget) pair's ``forget`` empties the engine's caches before its every pass."""
    tokens = sum(map(len, sentences))
    best = dict.fromkeys(engines, float("inf"))
    for predict, _ in engines.values():
        predict(sentences[:64])  # warm-up
    for _ in range(repeats):
        for name, (predict, forget) in engines.items():
            forget()
            start = time.perf_counter()
            predict(sentences)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: tokens / seconds for name, seconds in best.items()}


def _row(name: str, predict: Predict, sentences: list[list[str]], alone: list[list[str]],
         twenty: list[list[str]], batch: float, forget: Callable[[], None]) -> dict[str, float]:
    """The table's row of one engine; ``batch``: its tokens/s from ``_batch_rates``."""
    tokens = sum(map(len, sentences))
    forget()
    cpu = time.process_time()
    predict(sentences)
    per_cpu_second = tokens / (time.process_time() - cpu)  # all threads' CPU time: robust to a busy machine
    predict(sentences)
    times = _latencies(predict, alone)
    twenty_p50 = statistics.median(_latencies(predict, twenty)) if twenty else float("nan")
    p99 = statistics.quantiles(times, n=100)[98] if len(times) >= 100 else max(times)
    row = {"batch": batch, "cpu": per_cpu_second, "single": sum(map(len, alone)) / (sum(times) / 1e3),
           "p50": statistics.median(times), "p99": p99, "twenty": twenty_p50}
    print(f"{name:<22} {batch:>14,.0f} {per_cpu_second:>13,.0f} {row['single']:>12,.0f} {row['p50']:>8.2f} "
          f"{p99:>8.2f} {twenty_p50:>11.2f}")
    return row


def _end_to_end(target: str, test_file: Path, engine: str, threads: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "birnn.cli", "predict", target, str(test_file), "--input", "conllu",
                    "--engine", engine, "--threads", str(threads), "--device", "cpu"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _spacy(model: str, batch: int) -> Callable[[list[list[str]]], object] | str:
    if importlib.util.find_spec("spacy") is None:
        return "spaCy not installed (pip install spacy; python -m spacy download en_core_web_sm)"
    import spacy
    from spacy.tokens import Doc

    try:
        nlp = spacy.load(model, exclude=["parser", "ner", "lemmatizer", "attribute_ruler", "senter"])
    except OSError as exc:
        return f"spaCy model {model!r} not available ({str(exc).splitlines()[0][:80]})"
    return lambda sentences: [[t.tag_ for t in doc] for doc in nlp.pipe(
        (Doc(nlp.vocab, words=tokens) for tokens in sentences), batch_size=batch)]


def _flair(model: str | None, batch: int) -> Callable[[list[list[str]]], object] | str:
    if importlib.util.find_spec("flair") is None:
        return "flair not installed (see bench_tagger.py for a separate venv)"
    if model is None:
        return "flair: no --flair-model given (a path or a name flair can load)"
    from flair.data import Sentence
    from flair.models import SequenceTagger

    try:
        tagger = SequenceTagger.load(model)
    except Exception as exc:  # flair raises many kinds for a missing or unreachable model
        return f"flair model {model!r} not available ({type(exc).__name__})"

    def predict(sentences: list[list[str]]) -> object:
        batch_sentences = [Sentence(tokens) for tokens in sentences]
        tagger.predict(batch_sentences, mini_batch_size=batch)
        return batch_sentences

    return predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained tagger run (default: train a small one first)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--latency-sentences", type=int, default=500)
    parser.add_argument("--spacy-model", default="en_core_web_sm")
    parser.add_argument("--flair-model")
    parser.add_argument("--quick", action="store_true", help="300 sentences; no report")
    add_option(parser)
    args = parser.parse_args()
    test_file = args.data_dir / TEST
    if not test_file.is_file():
        sys.exit(f"bench_predict: {test_file} not found (--data-dir)")
    with tempfile.TemporaryDirectory() as scratch:
        recording = Recording()
        run = args.run or _train_small(args.data_dir, Path(scratch), args.threads)
        tagged = list(read_tagged(test_file))[: 300 if args.quick else None]
        sentences = [tokens for tokens, _ in tagged]
        alone = sentences[: args.latency_sentences]
        twenty = [tokens for tokens in sentences if len(tokens) == 20][: args.latency_sentences]
        task = load_task(run)  # export traces a copy of its network
        export(task, Path(scratch) / "model.onnx")
        (Path(scratch) / "int8").mkdir()
        export(task, Path(scratch) / "int8" / "model.onnx", quantize="int8")
        print(f"# Tagger prediction: {run.name} on EWT test ({len(sentences):,} sentences, "
              f"{sum(map(len, sentences)):,} tokens), {args.threads} threads\n")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start\n")
        print(f"{'engine':<22} {'batch 256 tok/s':>14} {'tok/CPU-second':>13} {'batch 1 tok/s':>12} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'20 tok p50':>11}")
        eager = Predictor(task, batch_size=256, threads=args.threads)
        onnx = OnnxPredictor(Path(scratch), batch_size=256, threads=args.threads)
        int8 = OnnxPredictor(Path(scratch) / "int8", batch_size=256, threads=args.threads)
        engines: dict[str, tuple[Predict, Callable[[], None]]] = {
            "birnn torch eager": (eager.predict, lambda: None), "birnn onnxruntime": (onnx.predict, onnx.clear_cache),
            "birnn onnxruntime int8": (int8.predict, int8.clear_cache)}
        skipped = {}
        for name, peer in (("spaCy " + args.spacy_model, _spacy(args.spacy_model, 256)),
                           ("flair", _flair(args.flair_model, 256))):
            if isinstance(peer, str):
                skipped[name] = peer
            else:
                engines[name] = (peer, lambda: None)
        rates = _batch_rates(engines, sentences, args.repeats)
        rows = {name: _row(name, predict, sentences, alone, twenty, rates[name], forget)
                for name, (predict, forget) in engines.items()}
        rows["torch"], rows["onnx"] = rows["birnn torch eager"], rows["birnn onnxruntime"]
        gold = [tag for _, tags in tagged for tag in tags]
        accuracy = {name: 100 * statistics.fmean(a == b for a, b in zip(
            (tag for tags in predict(sentences) for tag in tags), gold, strict=True))
            for name, predict in (("torch", eager.predict), ("onnxruntime", onnx.predict), ("int8", int8.predict))}
        for name, reason in skipped.items():
            print(f"{name:<22} skipped: {reason}")
        onnx.predict(sentences)
        warm = sum(map(len, sentences)) / best_time(onnx.predict, sentences, repeats=args.repeats, budget=60)
        print(f"\nonnxruntime / torch at batch 256: {rows['onnx']['batch'] / rows['torch']['batch']:.2f}× wall, "
              f"{rows['onnx']['cpu'] / rows['torch']['cpu']:.2f}× per CPU-second; with every test word's "
              f"character vector already cached: {warm:,.0f} tok/s, {warm / rows['torch']['batch']:.2f}× torch")
        quantised = rows["birnn onnxruntime int8"]["batch"] / rows["onnx"]["batch"]
        print(f"onnxruntime int8 / float at batch 256: {quantised:.2f}×; "
              "test accuracy " + ", ".join(f"{name} {value:.2f}" for name, value in accuracy.items()))
        if not args.quick:
            seconds = {engine: _end_to_end(target, test_file, engine, args.threads)
                       for engine, target in (("onnx", scratch), ("torch", str(run)))}
            print(f"end to end `birnn predict` over the test file (process start to exit): "
                  f"onnx {seconds['onnx']:.2f} s, torch {seconds['torch']:.2f} s")
        print(f"{TARGETS}\nbirnn {birnn.__version__}, torch {torch.__version__}")
        finish(args, "bench_predict", recording, peers=("onnxruntime", "onnx", "spacy", "flair"))


if __name__ == "__main__":
    main()
