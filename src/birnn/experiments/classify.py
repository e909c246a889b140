"""Train a sentence classifier on the user's files: one run with a dev set (a file, or a stratified
share of the training data), or stratified K-fold cross-validation as the MR literature reports it.

Model selection uses dev data only: in cross-validation every fold's dev share is cut from its
training folds, and the held-out fold is scored once, with the best dev weights. Each fold is a
run directory of its own (``<out>/fold-01`` …) with a ``result.json`` once it is finished, so a
resumed cross-validation skips the finished folds and continues the interrupted one.

With ``model.bilm`` the biLM run is loaded once, before any training, and shared by every fold, and
every sentence's vectors are computed once for all folds; each classifier's checkpoint holds the
biLM's weights, so a resumed fold does not need the run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from birnn.data.batching import batch_indices
from birnn.data.textclass import Labelled, read_labelled
from birnn.experiments.bilm import load_embedder
from birnn.tasks import BiLMEmbedder, ClassificationTask, ClassifierConfig, EncoderLMTask
from birnn.tasks.encoder_lm import transfer
from birnn.train import RunExists, TrainConfig, Trainer, load_task, with_overrides
from birnn.train.checkpoint import exists, write_atomic
from birnn.train.device import model_device, resolve_device, to_device
from birnn.train.trainer import batcher

Pair = tuple[list[str], str] | tuple[list[str], str, torch.Tensor]  # tokens, label (and their biLM vectors)
P = TypeVar("P", bound=Pair)


@dataclass(frozen=True)
class ClassifyRun:
    """Files (``file_format`` auto|tsv|classes|csv|jsonl, see ``data.textclass``; several train files
    or a folder: one file per class), how a dev set is made when there is no ``dev_file``
    (``dev_fraction`` of the training data, stratified), ``cv`` folds (0: one run; ``max_folds``: run
    only the first folds of the ``cv``, for quicker comparisons), the model and how to train it.
    ``split_seed`` draws the folds and dev shares. ``pretrain_epochs`` > 0: first the encoder is
    pretrained as two language models on the text of every training file (no labels;
    ``tasks.encoder_lm``), once, and every classifier starts from it."""

    train_files: tuple[Path, ...]
    dev_file: Path | None = None
    test_file: Path | None = None
    file_format: str = "auto"
    text_field: str = "text"
    label_field: str = "label"
    dev_fraction: float = 0.1
    cv: int = 0
    max_folds: int | None = None
    split_seed: int = 0
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain_epochs: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.dev_fraction < 1:
            raise ValueError(f"dev_fraction must lie in (0, 1); got {self.dev_fraction}")
        if self.cv == 1 or self.cv < 0:
            raise ValueError(f"cv must be 0 (no cross-validation) or >= 2 folds; got {self.cv}")
        if self.max_folds is not None and not 1 <= self.max_folds <= self.cv:
            raise ValueError(f"max_folds must lie in [1, cv={self.cv}]; got {self.max_folds}")
        if self.pretrain_epochs < 0:
            raise ValueError(f"pretrain_epochs must be >= 0; got {self.pretrain_epochs}")
        if self.cv and self.test_file is not None:
            raise ValueError("cross-validation scores every held-out fold; give no test file with cv")

    def read(self, paths: Path | Sequence[Path]) -> Labelled:
        return read_labelled(paths, self.file_format, self.text_field, self.label_field, self.model.tokenizer)

    @classmethod
    def build(cls, train_files: Sequence[Path], preset: str | None = None, **settings: Any) -> ClassifyRun:
        """The plain run or a preset ("mr"), with the given settings (by field name; None = not given)."""
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {preset!r}")
        base = cls(train_files=tuple(train_files), **(PRESETS[preset] if preset else {}))
        return with_overrides(base, **settings)


PRESETS: dict[str, dict[str, Any]] = {
    # MR without pretrained vectors: random 300-d embeddings of the words seen twice or more, a BiLSTM
    # with max pooling (Conneau et al. 2017), dropout 0.5 (Kim 2014), Adam, few epochs, early stopping
    "mr": {
        "cv": 10,
        "model": ClassifierConfig(model="bilstm", pool="max", embedding=300, hidden=100, dropout=0.5, min_count=2),
        "train": TrainConfig(epochs=5, batch_size=50, lr=1e-3, clip=5.0, patience=2),
    },
    # the same BiLSTM times binarised Naive Bayes over uni- and bigrams (Wang & Manning 2012), trained together
    "mr-nb": {
        "cv": 10,
        "model": ClassifierConfig(model="bilstm", pool="max", embedding=300, hidden=100, dropout=0.5, min_count=2,
                                  nb_ngrams=2),
        "train": TrainConfig(epochs=5, batch_size=50, lr=1e-3, clip=5.0, patience=2),
    },
}


# ----- splits --------------------------------------------------------------------------------------
def stratified_folds(labels: Sequence[str], k: int, seed: int) -> list[np.ndarray]:
    """K disjoint index arrays covering every example, each class spread evenly: the examples of each
    class are shuffled and dealt to the folds in turn (the deal continues across classes, so fold
    sizes differ by at most one)."""
    if not 2 <= k <= len(labels):
        raise ValueError(f"folds must lie in [2, {len(labels)} examples]; got {k}")
    rng = np.random.default_rng(seed)
    label_array = np.asarray(labels)
    folds: list[list[int]] = [[] for _ in range(k)]
    dealt = 0
    for label in sorted(set(labels)):
        for index in rng.permutation(np.flatnonzero(label_array == label)):
            folds[dealt % k].append(int(index))
            dealt += 1
    return [np.sort(np.asarray(fold, dtype=np.int64)) for fold in folds]


def stratified_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) index arrays: about ``fraction`` of each class held out (at least one example overall)."""
    rng = np.random.default_rng(seed)
    label_array, held = np.asarray(labels), []
    for label in sorted(set(labels)):
        members = rng.permutation(np.flatnonzero(label_array == label))
        held.append(members[: int(round(fraction * len(members)))])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    if held_out.size == 0 or held_out.size == len(labels):
        raise ValueError(f"dev_fraction {fraction} of {len(labels)} examples leaves no dev or no training data")
    return np.setdiff1d(np.arange(len(labels)), held_out), held_out


def _take(examples: Sequence[P], index: np.ndarray) -> list[P]:
    return [examples[i] for i in index]


# ----- one training --------------------------------------------------------------------------------
def outcomes(task: ClassificationTask, examples: Sequence[Any], batch_size: int = 256) -> list[Any]:
    """The task's ``evaluate_batch`` results over ``examples`` (eval mode, no autograd)."""
    collate, device = batcher(task), model_device(task.model)
    task.model.eval()
    with torch.no_grad():
        return [task.evaluate_batch(to_device(collate([examples[i] for i in index]), device))
                for index in batch_indices([len(e[0]) for e in examples], batch_size, None)]


def confusion_text(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """The confusion matrix as aligned text: rows gold, columns predicted."""
    width = max(6, *(len(label) for label in labels), len(str(int(matrix.max(initial=0)))))
    head = "gold \\ predicted".ljust(width + 2) + " ".join(label.rjust(width) for label in labels)
    rows = [label.ljust(width + 2) + " ".join(str(int(n)).rjust(width) for n in row)
            for label, row in zip(labels, matrix, strict=True)]
    return "\n".join([head, *rows])


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str = "") -> None:
    """A PNG of the confusion matrix (counts in the cells), replacing ``path`` atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 1.2 + 0.6 * len(labels)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
             xlabel="predicted", ylabel="gold", title=title)
    for (row, column), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        axes.text(column, row, str(int(count)), ha="center", va="center", color="white" if dark else "black")
    figure.colorbar(image)
    figure.tight_layout()
    data = io.BytesIO()
    figure.savefig(data, format="png", dpi=100)
    plt.close(figure)
    write_atomic(path, data.getvalue())


def epoch_line(epoch: int, row: dict[str, float]) -> str:
    return (f"epoch {epoch}: train loss {row['train_loss']:.4f}, dev accuracy {row.get('dev_accuracy', math.nan):.4f}"
            f", dev macro-F1 {row.get('dev_macro_f1', math.nan):.4f}, {row['seconds']:.0f} s")


def _continues(out: Path, resume: bool) -> bool:
    """Whether a training in ``out`` continues its checkpoint rather than building a new task."""
    return resume and exists(out / "checkpoint")


def _embedder(run: ClassifyRun, needed: bool) -> BiLMEmbedder | None:
    """The frozen biLM of ``run.model.bilm`` when a new task will need it (a bad path fails here)."""
    return load_embedder(run.model.bilm) if run.model.bilm and needed else None


PRETRAIN_HELD_OUT = 0.02  # of the sentences: the pretraining's dev set (perplexity, best weights)


def pretrain(run: ClassifyRun, sentences: Sequence[Pair], out: Path, resume: bool = False, progress: bool = True,
             log: Callable[[str], Any] = print, bilm: BiLMEmbedder | None = None,
             device: torch.device | None = None) -> EncoderLMTask:
    """The encoder pretrained on the sentences' text (labels unused) in the run directory ``out``,
    ``run.pretrain_epochs`` epochs with ``run.train``'s optimiser settings, best by held-out
    log-likelihood; a finished one (``result.json``) is loaded, an interrupted one resumed."""
    done = out / "result.json"
    if not done.is_file():
        held = _continues(out, resume)
        task = load_task(out, "checkpoint") if held else EncoderLMTask.for_text(run.model, sentences, bilm)
        task.model.train()
        task.model.to(device or "cpu")
        every = np.random.default_rng(run.split_seed).permutation(len(sentences))
        cut = max(1, int(round(PRETRAIN_HELD_OUT * len(sentences))))
        dev, train = task.unlabelled(_take(sentences, every[:cut])), task.unlabelled(_take(sentences, every[cut:]))
        config = with_overrides(run.train, epochs=run.pretrain_epochs)
        log(f"pretraining the encoder: {len(train)} sentences, {len(dev)} held out, {run.pretrain_epochs} epochs")
        summary = Trainer(task, train, dev, config, out, progress=progress,
                          on_epoch=lambda epoch, row: log(pretrain_line(epoch, row)), log=log).fit(resume=resume)
        write_atomic(done, json.dumps({"best_dev": summary["best_dev"]}, indent=1).encode())
    return load_task(out, device=device or "cpu")


def pretrain_line(epoch: int, row: dict[str, float]) -> str:
    backward = f" backward {row['dev_perplexity_backward']:.1f}" if "dev_perplexity_backward" in row else ""
    return (f"pretraining epoch {epoch}: loss {row['train_loss']:.4f}, held-out perplexity forward "
            f"{row['dev_perplexity_forward']:.1f}{backward}, {row['seconds']:.0f} s")


def train_once(run: ClassifyRun, train: Sequence[Pair], dev: Sequence[Pair], test: Sequence[Pair] | None, out: Path,
               resume: bool = False, progress: bool = True, log: Callable[[str], Any] = print,
               bilm: BiLMEmbedder | None = None, device: torch.device | None = None,
               pretrained: EncoderLMTask | None = None) -> dict[str, Any]:
    """Train on ``train``, select on ``dev``, score the best weights on ``test`` (confusion.png in ``out``);
    ``bilm``: the embedder of ``run.model.bilm`` (``load_embedder``), unless the run continues a checkpoint;
    ``device``: where the model trains and is scored (None: the CPU); ``pretrained``: the encoder a new
    classifier starts from (``pretrain``).
    -> {"best_dev", "dev": metrics, "test": metrics or None, "confusion": (K, K) list, "labels", "seconds",
    "cpu_seconds"} (wall-clock and this process's CPU time)."""
    started, cpu = time.perf_counter(), time.process_time()
    held = _continues(out, resume)
    task = load_task(out, "checkpoint") if held else ClassificationTask.for_data(run.model, train, bilm)
    if pretrained is not None and not held:
        copied = transfer(pretrained, task)
        log(f"starting from the pretrained encoder; {copied} of {len(task.words) - 2} word vectors pretrained")
    task.model.train()
    task.model.to(device or "cpu")
    examples = {name: task.encode(part, name) for name, part in (("train", train), ("dev", dev), ("test", test))
                if part is not None}
    trainer = Trainer(task, examples["train"], examples["dev"], run.train, out, progress=progress,
                      on_epoch=lambda epoch, row: log(epoch_line(epoch, row)), log=log)
    summary = trainer.fit(resume=resume)
    best = load_task(out, device=device or "cpu")
    on_dev = outcomes(best, examples["dev"])
    on_test = outcomes(best, examples["test"]) if test is not None else None
    matrix = best.confusion(on_test if on_test is not None else on_dev)
    plot_confusion(matrix, best.labels, out / "confusion.png", "test" if test is not None else "dev")
    return {"best_dev": summary["best_dev"], "dev": best.metrics(on_dev),
            "test": best.metrics(on_test) if on_test is not None else None, "confusion": matrix.tolist(),
            "labels": best.labels, "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}


# ----- the run: one training or cross-validation ---------------------------------------------------
def run_classifier(run: ClassifyRun, out: str | Path, resume: bool = False, progress: bool = True,
                   log: Callable[[str], Any] = print, device: str = "auto") -> dict[str, Any]:
    """One training (``run.cv == 0``) -> ``train_once``'s result, or cross-validation -> ``cross_validate``'s.
    device: auto | cpu | cuda | cuda:N."""
    out, where = Path(out), resolve_device(device)
    data = run.read(run.train_files)
    for name, codec in data.encodings.items():
        log(f"{name}: {codec}")
    if run.cv:
        return cross_validate(run, data.examples, out, resume, progress, log, where)
    test = run.read(run.test_file).examples if run.test_file else None  # read now: a bad file fails early
    if run.dev_file:
        train, dev = data.examples, run.read(run.dev_file).examples
    else:
        kept, held = stratified_split([label for _, label in data.examples], run.dev_fraction, run.split_seed)
        train, dev = _take(data.examples, kept), _take(data.examples, held)
    bilm = _embedder(run, not _continues(out, resume))
    pretrained = pretrain(run, [*train, *dev], out / "pretrain", resume, progress, log, bilm, where) if (
        run.pretrain_epochs and not _continues(out, resume)) else None
    result = train_once(run, train, dev, test, out, resume, progress, log, bilm, where, pretrained)
    log(confusion_text(np.asarray(result["confusion"]), result["labels"]))
    return result


def cross_validate(run: ClassifyRun, examples: Sequence[Pair], out: Path, resume: bool = False, progress: bool = True,
                   log: Callable[[str], Any] = print, device: torch.device | None = None) -> dict[str, Any]:
    """Stratified ``run.cv``-fold cross-validation; writes ``<out>/cv.json`` and ``confusion.png`` (summed over
    folds). -> {"folds": per-fold results, "accuracy_mean", "accuracy_sd", "macro_f1_mean", "macro_f1_sd", …};
    sd is the sample standard deviation over folds (ddof = 1)."""
    out.mkdir(parents=True, exist_ok=True)
    started = [p for p in out.glob("fold-*") if (p / "result.json").is_file() or exists(p / "checkpoint")]
    if started and not resume:
        raise RunExists(f"{out} already holds cross-validation folds; resume it or choose another directory")
    labels = [e[1] for e in examples]
    folds = stratified_folds(labels, run.cv, run.split_seed)[: run.max_folds]
    directories = [out / f"fold-{number:02d}" for number in range(1, len(folds) + 1)]
    bilm = _embedder(run, any(not (d / "result.json").is_file() and not _continues(d, resume) for d in directories))
    if bilm is not None:  # every sentence through the biLM once, not once per fold
        vectors = bilm.vectors_of([e[0] for e in examples])
        examples = [(e[0], e[1], v) for e, v in zip(examples, vectors, strict=True)]
    pretrained = None
    if run.pretrain_epochs and any(not (d / "result.json").is_file() and not _continues(d, resume)
                                   for d in directories):
        pretrained = pretrain(run, examples, out / "pretrain", resume, progress, log, bilm, device)
    results = []
    for number, (held_out, directory) in enumerate(zip(folds, directories, strict=True), start=1):
        done = directory / "result.json"
        if done.is_file():
            results.append(json.loads(done.read_text()))
            log(f"fold {number}/{run.cv}: finished earlier, test accuracy {results[-1]['test']['accuracy']:.4f}")
            continue
        rest = np.setdiff1d(np.arange(len(examples)), held_out)
        kept, dev = stratified_split([labels[i] for i in rest], run.dev_fraction, run.split_seed + number)
        log(f"fold {number}/{run.cv}: {len(kept)} train, {len(dev)} dev, {len(held_out)} test")
        result = train_once(run, _take(examples, rest[kept]), _take(examples, rest[dev]), _take(examples, held_out),
                            directory, resume, progress, log, bilm, device, pretrained)
        write_atomic(done, json.dumps(result, indent=1).encode())
        log(f"fold {number}/{run.cv}: test accuracy {result['test']['accuracy']:.4f}, "
            f"macro-F1 {result['test']['macro_f1']:.4f} ({result['seconds']:.0f} s)")
        results.append(result)
    summary = cv_summary(results) | {"cv": run.cv}
    write_atomic(out / "cv.json", json.dumps(summary, indent=1).encode())
    matrix = np.sum([np.asarray(r["confusion"]) for r in results], axis=0)
    plot_confusion(matrix, results[0]["labels"], out / "confusion.png",
                   f"{len(results)} of {run.cv} folds of cross-validation")
    log(confusion_text(matrix, results[0]["labels"]))
    return summary


def cv_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof = 1) of the folds' test accuracy and macro-F1."""
    summary: dict[str, Any] = {"folds": results, "seconds": sum(r["seconds"] for r in results),
                               "cpu_seconds": sum(r.get("cpu_seconds", 0.0) for r in results)}
    for metric in ("accuracy", "macro_f1"):
        values = np.asarray([r["test"][metric] for r in results])
        summary[f"{metric}_mean"] = float(values.mean())
        summary[f"{metric}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary
