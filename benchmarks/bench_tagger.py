"""birnn's tagger against flair's ``SequenceTagger``: same files, same settings, same machine, same run.

Data: WNUT-17 NER (``--data wnut17``, BIO tags, span F1) or UD English EWT UPOS
(``--data ewt``, token accuracy), from ``--data-dir`` (default ``../shared/data``).
The splits are read once here and written to column files (token TAB tag) that
both peers train and predict on, so they see the same sentences.

One setting for both peers, no pretrained vectors: word embeddings of size 100
learned from scratch over every training word (<unk> for the others), a character
BiLSTM (embedding 25, hidden 25 per direction: flair's ``CharacterEmbeddings``
defaults), a 1-layer BiLSTM of 128 units per direction, a CRF output layer (BIOES
internally for NER: flair's ``tag_format`` default, birnn's ``scheme="bioes"``), no
dropout of any kind, Adam at lr ``--lr``, gradient norm clipped at 5, batch 32,
``--epochs`` epochs, the same number of torch threads in both processes.

- birnn: ``TaggingTask`` + ``Trainer`` with the ``TagRun`` settings above, in this
  process; predictions through ``birnn.serve.Predictor`` (batch 256).
- flair: ``SequenceTagger(StackedEmbeddings([OneHotEmbeddings, CharacterEmbeddings]),
  reproject_embeddings=False, use_crf=True, ...)`` trained by flair's own
  ``ModelTrainer.train`` (shuffled batches, dev evaluation each epoch, the last
  epoch's weights kept), ``tagger.predict(mini_batch_size=256)``; run by the Python of
  ``--flair-python`` / ``$FLAIR_PYTHON`` (else this one, when it imports flair) on a
  script this file writes to a temporary file; it prints one JSON line.

What differs by design: birnn buckets training batches by length, flair draws them
at random; birnn's CRF forbids invalid BIOES transitions, flair's does not; birnn
averages the loss over tokens, flair sums it over the batch (Adam makes the scale
almost irrelevant; the clipping threshold is then not the same constraint).

Training tokens/s: all epochs' tokens over the summed time of their training loops
(batching, forward, backward, clipping, step; not the dev evaluation between epochs,
nor checkpoints). Prediction tokens/s: the test set, best of ``--repeats`` passes,
tokens as strings in, tags out. Scores: the last epoch's weights on dev and test,
both peers' predicted tags scored here by the same seqeval call (strict IOB2 span
F1, micro) or token accuracy. "total s": each process's time from reading the files
to its last prediction (not interpreter start or imports).

    python benchmarks/bench_tagger.py                         # WNUT-17, 2 epochs, 2 threads
    python benchmarks/bench_tagger.py --data ewt --epochs 5
    python benchmarks/bench_tagger.py --quick                 # 1 epoch on 500 sentences, no report

flair pulls transformers and more; keep it out of birnn's venv and beside the same
CPU torch (the constraint stops pip from pulling a CUDA build)::

    python3 -m venv /tmp/flair-venv
    echo 'torch==2.13.0' > /tmp/flair-constraints.txt
    /tmp/flair-venv/bin/pip install -c /tmp/flair-constraints.txt torch==2.13.0 flair
    FLAIR_PYTHON=/tmp/flair-venv/bin/python python benchmarks/bench_tagger.py

Without flair the table has birnn's row only and says how to provide the peer.
flair's ``CharacterEmbeddings()`` would download its "common-chars" dictionary;
the peer builds the character dictionary from the training words instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

Sentence = tuple[list[str], list[str]]

EMBEDDING, CHAR_EMBEDDING, CHAR_HIDDEN, HIDDEN, LAYERS = 100, 25, 25, 128, 1
BATCH, PREDICT_BATCH, CLIP = 32, 256, 5.0
QUICK_SENTENCES = 500
DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DATASETS = {  # name -> (label, CoNLL-U column or None, train, dev, test) under --data-dir
    "wnut17": ("ner", None, "wnut17/wnut17train.conll", "wnut17/emerging.dev.conll",
               "wnut17/emerging.test.annotated"),
    "ewt": ("upos", "upos", "ud_english_ewt/en_ewt-ud-train.conllu.gz", "ud_english_ewt/en_ewt-ud-dev.conllu.gz",
            "ud_english_ewt/en_ewt-ud-test.conllu.gz"),
}
_RESULT = "BENCH_TAGGER_RESULT "  # prefix of the flair peer's one JSON line on stdout


@dataclass(frozen=True)
class Side:
    """One peer's run: tokens and loop seconds per epoch, the best test prediction pass, predicted tags."""

    epoch_tokens: list[int]
    epoch_seconds: list[float]
    predict_tokens: int
    predict_seconds: float
    dev_predicted: list[list[str]]
    test_predicted: list[list[str]]
    total_seconds: float

    @property
    def train_tokens_per_s(self) -> float:
        return sum(self.epoch_tokens) / sum(self.epoch_seconds)

    @property
    def predict_tokens_per_s(self) -> float:
        return self.predict_tokens / self.predict_seconds


# ----- data and the shared metric --------------------------------------------------------------------
def read_splits(data: str, data_dir: Path, limit: int | None) -> tuple[list[Sentence], ...]:
    """(train, dev, test) sentences, each cut to its first ``limit`` sentences when given."""
    from birnn.data import read_tagged

    _, column, *names = DATASETS[data]
    splits = []
    for name in names:
        path = data_dir / name
        if not path.exists():
            raise SystemExit(f"{path} not found (--data-dir {data_dir}; see shared/data/SOURCES.md)")
        sentences = read_tagged(path, "conllu" if column else "conll", column or "upos")
        splits.append(sentences[:limit] if limit else sentences)
    return tuple(splits)


def write_columns(sentences: list[Sentence], path: Path) -> None:
    """token TAB tag, a blank line after each sentence: the file both peers read."""
    with path.open("w", encoding="utf-8") as handle:
        for tokens, tags in sentences:
            handle.writelines(f"{token}\t{tag}\n" for token, tag in zip(tokens, tags, strict=True))
            handle.write("\n")


def score(gold: list[list[str]], predicted: list[list[str]], chunks: bool) -> float:
    """seqeval's strict IOB2 span F1 (micro), as birnn's TaggingTask reports it, or token accuracy."""
    if [len(g) for g in gold] != [len(p) for p in predicted]:
        raise ValueError("predicted tags do not line up with the gold sentences")
    if chunks:
        from seqeval.metrics import f1_score
        from seqeval.scheme import IOB2

        return float(f1_score(gold, predicted, mode="strict", scheme=IOB2, zero_division=0))
    pairs = [(g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)]
    return sum(g == p for g, p in pairs) / len(pairs)


# ----- birnn, in this process ------------------------------------------------------------------------
def run_birnn(folder: Path, chunks: bool, epochs: int, lr: float, seed: int, repeats: int) -> Side:
    """Train with ``Trainer`` on the column files, predict dev and test with ``Predictor`` (last weights)."""
    from birnn.experiments.tagging import TagRun
    from birnn.serve import Predictor
    from birnn.tasks import TaggingTask
    from birnn.train import Trainer

    started = time.perf_counter()
    run = TagRun.build(
        folder / "train.txt", None, dev_file=folder / "dev.txt", test_file=folder / "test.txt", file_format="conll",
        model="bilstm", embedding=EMBEDDING, hidden=HIDDEN, layers=LAYERS, dropout=0.0, chars="lstm",
        char_embedding=CHAR_EMBEDDING, char_hidden=CHAR_HIDDEN, shape_embedding=0, lowercase=False, word_dropout=0.0,
        crf=True, scheme="bioes" if chunks else None, epochs=epochs, batch_size=BATCH, optimizer="adam", lr=lr,
        clip=CLIP, seed=seed,
    )
    train, dev, test = run.read(run.train_file), run.read(run.dev_file), run.read(run.test_file)
    task = TaggingTask.for_data(run.model, train)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(task, task.encode(train, "train"), task.encode(dev, "dev"), run.train, out, progress=False)
        trainer.fit()
    task.model.eval()
    predictor = Predictor(task, PREDICT_BATCH)
    dev_predicted = predictor.predict([tokens for tokens, _ in dev])
    test_tokens = [tokens for tokens, _ in test]
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        test_predicted = predictor.predict(test_tokens)
        best = min(best, time.perf_counter() - start)
    rows = trainer.history
    return Side([int(row["tokens"]) for row in rows], [row["seconds"] for row in rows],
                sum(map(len, test_tokens)), best, dev_predicted, test_predicted, time.perf_counter() - started)


# ----- flair, in a subprocess with its own Python ----------------------------------------------------
FLAIR_PEER = r'''
"""bench_tagger's flair side: SequenceTagger + ModelTrainer on the column files; one JSON line on stdout."""
import json, logging, math, sys, tempfile, time
from pathlib import Path

settings = json.loads(Path(sys.argv[1]).read_text())
import torch

torch.set_num_threads(settings["threads"])
import flair
from flair.data import Corpus, Dictionary
from flair.datasets import ColumnCorpus
from flair.embeddings import CharacterEmbeddings, OneHotEmbeddings, StackedEmbeddings
from flair.models import SequenceTagger
from flair.trainers import ModelTrainer
from flair.trainers.plugins.base import TrainerPlugin

logging.getLogger("flair").setLevel(logging.WARNING)
flair.device = torch.device("cpu")
flair.set_seed(settings["seed"])


class EpochClock(TrainerPlugin):
    """Seconds of each epoch's training loop: before_training_epoch to after_training_epoch."""

    def __init__(self):
        super().__init__()
        self.seconds, self._start = [], None

    @TrainerPlugin.hook
    def before_training_epoch(self, **kw):
        self._start = time.perf_counter()

    @TrainerPlugin.hook
    def after_training_epoch(self, **kw):
        self.seconds.append(time.perf_counter() - self._start)


started = time.perf_counter()
label, folder = settings["label"], Path(settings["folder"])
columns = ColumnCorpus(folder, {0: "text", 1: label}, train_file="train.txt", dev_file="dev.txt",
                       test_file="test.txt", in_memory=True, sample_missing_splits=False)
test = list(columns.test)
corpus = Corpus(train=columns.train, dev=columns.dev, test=None, sample_missing_splits=False)  # no final test run
chars = Dictionary(add_unk=True)  # CharacterEmbeddings() would download flair's "common-chars"
for sentence in corpus.train:
    for token in sentence:
        for char in token.text:
            chars.add_item(char)
embeddings = StackedEmbeddings([
    OneHotEmbeddings.from_corpus(corpus, field="text", min_freq=1, embedding_length=settings["embedding"]),
    CharacterEmbeddings(chars, char_embedding_dim=settings["char_embedding"], hidden_size_char=settings["char_hidden"]),
])
tagger = SequenceTagger(
    embeddings=embeddings, tag_dictionary=corpus.make_label_dictionary(label, add_unk=False), tag_type=label,
    hidden_size=settings["hidden"], rnn_layers=settings["layers"], use_crf=True, reproject_embeddings=False,
    dropout=0.0, word_dropout=0.0, locked_dropout=0.0,
)
clock = EpochClock()
with tempfile.TemporaryDirectory() as base:
    ModelTrainer(tagger, corpus).train(
        base, learning_rate=settings["lr"], mini_batch_size=settings["batch"], max_epochs=settings["epochs"],
        optimizer=torch.optim.Adam, max_grad_norm=settings["clip"], use_final_model_for_eval=True,
        save_final_model=False, create_file_logs=False, create_loss_file=False, plugins=[clock],
    )
tagger.eval()


def tags(sentences):
    """The predicted tags, spans written back as BIO."""
    rows = []
    for sentence in sentences:
        if tagger.predict_spans:
            row = ["O"] * len(sentence)
            for span in sentence.get_spans("predicted"):
                for k, token in enumerate(span.tokens):
                    row[token.idx - 1] = ("B-" if k == 0 else "I-") + span.tag
        else:
            row = [token.get_label("predicted").value for token in sentence]
        rows.append(row)
    return rows


dev = list(corpus.dev)
tagger.predict(dev, mini_batch_size=settings["predict_batch"], label_name="predicted")
best = math.inf
for _ in range(settings["repeats"]):
    start = time.perf_counter()
    tagger.predict(test, mini_batch_size=settings["predict_batch"], label_name="predicted")
    best = min(best, time.perf_counter() - start)
train_tokens = sum(len(s) for s in corpus.train)
result = {
    "epoch_tokens": [train_tokens] * len(clock.seconds), "epoch_seconds": clock.seconds,
    "predict_tokens": sum(len(s) for s in test), "predict_seconds": best,
    "dev_predicted": tags(dev), "test_predicted": tags(test), "total_seconds": time.perf_counter() - started,
    "sentences": [len(corpus.train), len(dev), len(test)], "flair": flair.__version__, "torch": torch.__version__,
    "threads": torch.get_num_threads(),
}
print("BENCH_TAGGER_RESULT " + json.dumps(result), flush=True)
'''


def flair_python(given: str | None) -> str | None:
    """--flair-python, else $FLAIR_PYTHON, else this interpreter when it imports flair."""
    if given:
        return given
    if os.environ.get("FLAIR_PYTHON"):
        return os.environ["FLAIR_PYTHON"]
    return sys.executable if importlib.util.find_spec("flair") else None


def run_flair(python: str, settings: dict) -> tuple[Side | None, dict]:
    """(side, details) of flair in ``python``; side is None and details["error"] says why on failure."""
    with tempfile.TemporaryDirectory() as scratch:
        script, config = Path(scratch) / "flair_peer.py", Path(scratch) / "settings.json"
        script.write_text(FLAIR_PEER)
        config.write_text(json.dumps(settings))
        threads = str(settings["threads"])
        env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, MPLBACKEND="Agg")
        try:
            done = subprocess.run([python, "-W", "ignore", str(script), str(config)], capture_output=True, text=True,
                                  env=env)
        except OSError as error:
            return None, {"error": f"{python}: {error}"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT)]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return None, {"error": f"{python} exited with {done.returncode}: {tail[:300]}"}
    details = json.loads(lines[-1][len(_RESULT):])
    side = Side(details["epoch_tokens"], details["epoch_seconds"], details["predict_tokens"],
                details["predict_seconds"], details["dev_predicted"], details["test_predicted"],
                details["total_seconds"])
    return side, details


# ----- the table -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(DATASETS), default="wnut17", help="wnut17 (NER) or ewt (UPOS)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="folder holding wnut17/ and ud_english_ewt/")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of both peers [2]")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's learning rate, both peers [0.002]")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of both processes [2]")
    parser.add_argument("--repeats", type=int, default=3, help="test prediction passes; the best is kept [3]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flair-python", help="Python with flair [$FLAIR_PYTHON, else this one if it has flair]")
    parser.add_argument("--no-flair", action="store_true", help="birnn's row only")
    parser.add_argument("--quick", action="store_true", help=f"1 epoch, first {QUICK_SENTENCES} sentences per split")
    import _report  # beside this file, on sys.path when run as a script

    _report.add_option(parser)
    args = parser.parse_args()
    if args.epochs < 1 or args.threads < 1 or args.repeats < 1:
        parser.error(f"--epochs, --threads, --repeats must be >= 1; got {args.epochs}, {args.threads}, {args.repeats}")
    epochs = 1 if args.quick else args.epochs
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))
    from _timing import machine

    label = DATASETS[args.data][0]
    chunks = label == "ner"
    splits = read_splits(args.data, args.data_dir, QUICK_SENTENCES if args.quick else None)
    python = None if args.no_flair else flair_python(args.flair_python)
    details: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, sentences in zip(("train", "dev", "test"), splits, strict=True):
            write_columns(sentences, Path(folder) / f"{name}.txt")
        loads = [os.getloadavg()[0]]  # other work on the machine skews both peers: say how much there was
        ours = run_birnn(Path(folder), chunks, epochs, args.lr, args.seed, args.repeats)
        loads.append(os.getloadavg()[0])
        theirs: Side | None = None
        if python:
            settings = {"folder": folder, "label": label, "epochs": epochs, "lr": args.lr, "seed": args.seed,
                        "threads": args.threads, "embedding": EMBEDDING, "char_embedding": CHAR_EMBEDDING,
                        "char_hidden": CHAR_HIDDEN, "hidden": HIDDEN, "layers": LAYERS, "batch": BATCH,
                        "predict_batch": PREDICT_BATCH, "clip": CLIP, "repeats": args.repeats}
            theirs, details = run_flair(python, settings)
            loads.append(os.getloadavg()[0])
    if theirs is not None and details["sentences"] != [len(s) for s in splits]:
        details["error"] = f"flair read {details['sentences']} sentences, birnn {[len(s) for s in splits]}"
        theirs = None

    _, dev, test = splits
    gold_dev, gold_test = [tags for _, tags in dev], [tags for _, tags in test]
    metric = "F1" if chunks else "acc"
    recording = _report.Recording()
    print(f"# birnn tagger vs flair SequenceTagger, {args.data} {label} — {machine()}\n")
    sizes = ", ".join(f"{name} {len(s):,} sentences / {sum(len(t) for t, _ in s):,} tokens"
                      for name, s in zip(("train", "dev", "test"), splits, strict=True))
    print(f"{sizes}; {epochs} epoch(s), batch {BATCH}, Adam lr {args.lr:g}, clip {CLIP:g}; word emb {EMBEDDING} "
          f"(from scratch), char BiLSTM {CHAR_EMBEDDING}/{CHAR_HIDDEN}, BiLSTM {HIDDEN}×2, {LAYERS} layer, CRF, "
          f"no dropout; prediction batch {PREDICT_BATCH}, best of {args.repeats}; {args.threads} torch threads each\n")
    print(f"| tagger | train tok/s | × flair | predict tok/s | × flair | dev {metric} | test {metric} | train s | "
          "total s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [("birnn", ours)] + ([(f"flair {details['flair']}", theirs)] if theirs else [])
    for name, side in rows:
        train_ratio = f"{side.train_tokens_per_s / theirs.train_tokens_per_s:.2f}×" if theirs else "–"
        predict_ratio = f"{side.predict_tokens_per_s / theirs.predict_tokens_per_s:.2f}×" if theirs else "–"
        print(f"| {name} | {side.train_tokens_per_s:,.0f} | {train_ratio} | {side.predict_tokens_per_s:,.0f} | "
              f"{predict_ratio} | {score(gold_dev, side.dev_predicted, chunks):.4f} | "
              f"{score(gold_test, side.test_predicted, chunks):.4f} | {sum(side.epoch_seconds):.1f} | "
              f"{side.total_seconds:.1f} |", flush=True)
    if theirs is None:
        why = details.get("error") or ("--no-flair" if args.no_flair else
                                       "no --flair-python given, $FLAIR_PYTHON unset, and this Python has no flair")
        print(f"\nflair not available ({why}). Install it in its own venv (see this file's docstring) and run "
              "with FLAIR_PYTHON=/path/to/python.")
    else:
        print(f"\nflair {details['flair']} with torch {details['torch']}, {details['threads']} threads, "
              f"in {python}")
    print(f"1-minute load average before birnn, {'before flair, ' if len(loads) > 2 else ''}at the end: "
          f"{', '.join(f'{x:.1f}' for x in loads)} (on {os.cpu_count()} CPUs)")
    _report.finish(args, "bench_tagger", recording, peers=("seqeval",))


if __name__ == "__main__":
    main()
