"""Train a biLM (two one-directional character LMs) on raw text, and write contextual token vectors.

Text comes from files and from the shipped corpora by name (``SHIPPED``, read under ``corpora``):
a CoNLL-U or CoNLL column file gives its sentences' tokens joined by spaces, The Time Machine its
paragraphs, any other text file its non-blank lines. The last ``heldout`` fraction of every
source's lines is held out for the perplexity of each direction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from birnn.data import read_tagged, read_text
from birnn.tasks.bilm import BiLMConfig, BiLMEmbedder, BiLMTask
from birnn.train import TrainConfig, Trainer, distributed, load_task
from birnn.train.device import resolve_device
from birnn.train.trainer import batcher

Log = Callable[[str], Any]
SHIPPED: dict[str, tuple[str, ...]] = {
    "timemachine": ("timemachine/timemachine.txt",),
    "ewt": ("ud_english_ewt/en_ewt-ud-train.conllu.gz",),
    "wnut17": ("wnut17/wnut17train.conll",),
    "polarity": ("sentence_polarity/rt-polarity.pos", "sentence_polarity/rt-polarity.neg"),
}


@dataclass(frozen=True)
class BiLMRun:
    """texts: file paths or names in ``SHIPPED``; steps: characters per training example (longer lines
    are cut); heldout: the fraction of each source's last lines held out."""

    texts: tuple[str, ...] = tuple(SHIPPED)
    corpora: Path = Path("../shared/data")
    heldout: float = 0.02
    steps: int = 250
    model: BiLMConfig = field(default_factory=BiLMConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, batch_size=32, lr=2e-3, clip=1.0))

    def __post_init__(self) -> None:
        if not self.texts:
            raise ValueError("texts must name at least one file or shipped corpus")
        if not 0 <= self.heldout < 1 or self.steps < 1:
            raise ValueError(f"heldout must lie in [0, 1) and steps be >= 1; got {self.heldout}, {self.steps}")


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each with its lines joined by single spaces."""
    return [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]


def read_lines(source: str, corpora: Path = BiLMRun.corpora) -> list[str]:
    """The lines of raw text of one source: a shipped corpus by name, or a file."""
    paths = [corpora / part for part in SHIPPED[source]] if source in SHIPPED else [Path(source)]
    lines: list[str] = []
    for path in paths:
        if not path.is_file():
            where = f"shipped corpus {source!r} is not under {corpora}" if source in SHIPPED else (
                f"no such file, and not a shipped corpus ({', '.join(SHIPPED)})")
            raise FileNotFoundError(f"{path}: {where}")
        if ".conll" in path.name:
            lines += [" ".join(tokens) for tokens, _ in read_tagged(path, require_tags=False)]  # only the text
        elif source == "timemachine":
            lines += paragraphs(read_text(path))
        else:
            lines += [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{source}: no text")
    return lines


def split_lines(lines: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(training lines, the last ``fraction`` of the lines — at least one when fraction > 0)."""
    held = math.ceil(fraction * len(lines)) if fraction > 0 else 0
    if held >= len(lines):
        raise ValueError(f"heldout={fraction} leaves no training text of {len(lines)} lines")
    return lines[: len(lines) - held], lines[len(lines) - held :]


def epoch_line(epoch: int, row: dict[str, float]) -> str:
    held = ""
    if "dev_perplexity_forward" in row:
        held = (f", held-out perplexity forward {row['dev_perplexity_forward']:.3f} "
                f"backward {row['dev_perplexity_backward']:.3f}")
    return (f"epoch {epoch}: training loss {row['train_loss']:.4f} (both directions){held}, "
            f"{row['tokens_per_s']:,.0f} characters/s, {row['seconds']:.0f} s")


def run_bilm(run: BiLMRun, out: str | Path, resume: bool = False, progress: bool = True,
             log: Log = print, device: str = "auto") -> dict[str, Any]:
    """Train (or continue) both LMs on ``device`` (auto | cpu | cuda | cuda:N); -> characters, held-out
    perplexity per direction and training time."""
    where = distributed.rank_device(resolve_device(device))
    train_lines, held_lines = [], []
    for source in run.texts:
        train, held = split_lines(read_lines(source, run.corpora), run.heldout)
        train_lines += train
        held_lines += held
    task = load_task(out, "checkpoint") if resume else BiLMTask.for_text(run.model, train_lines)
    if resume:
        task.model.train()
    task.model.to(where)
    train_examples = task.text_examples(train_lines, run.steps)
    held_examples = task.text_examples(held_lines, run.steps) or None
    chars = sum(len(ids) - 1 for ids, _, _ in train_examples)
    log(f"{chars:,} training and {sum(len(ids) - 1 for ids, _, _ in held_examples or []):,} held-out characters "
        f"per direction, {len(task.vocab):,} symbols")
    trainer = Trainer(task, train_examples, held_examples, run.train, out, progress=progress,
                      on_epoch=lambda epoch, row: log(epoch_line(epoch, row)), log=log)
    summary = trainer.fit(resume=resume)
    report: dict[str, Any] = {"training characters": chars, "epochs": summary["epochs"],
                              "training seconds": sum(row["seconds"] for row in trainer.history)}
    best = max(trainer.history, key=lambda row: row.get("dev_log_likelihood", -math.inf))
    for key in ("dev_perplexity_forward", "dev_perplexity_backward"):
        if key in best:
            report[f"held-out {key[4:].replace('_', ' ')} (best epoch {best['epoch']})"] = best[key]
    return report


def load_embedder(run_dir: str | Path) -> BiLMEmbedder:
    """The frozen token embedder of a biLM run's best weights."""
    task = load_task(run_dir)
    if not isinstance(task, BiLMTask):
        raise ValueError(f"{run_dir}: a {task.kind} run, not a biLM (train one with `birnn train bilm`)")
    return task.embedder()


def read_sentences(path: Path) -> list[list[str]]:
    """Token lists of a CoNLL-U/CoNLL file, or of a text file with one whitespace-tokenised sentence per line."""
    if ".conll" in path.name:
        return [tokens for tokens, _ in read_tagged(path, require_tags=False)]  # only the tokens
    sentences = [line.split() for line in read_text(path).splitlines() if line.strip()]
    if not sentences:
        raise ValueError(f"{path}: no sentences")
    return sentences


def embed_sentences(run_dir: str | Path, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[np.ndarray]:
    """One (n, D) array per sentence: a biLM's token vectors, or a tagger's encoder features."""
    task = load_task(run_dir)
    if isinstance(task, BiLMTask):
        return [v.numpy() for v in task.embedder().vectors_of(sentences, batch_size)]
    if not hasattr(task, "embed"):
        raise ValueError(f"{run_dir}: a {task.kind} run has no token vectors")
    out: list[np.ndarray] = []
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start : start + batch_size]
        out += task.embed(batcher(task)([task.encode_input(list(tokens)) for tokens in chunk]))
    return out


def embed_file(run_dir: str | Path, data: Path, to: Path, batch_size: int = 64) -> tuple[int, int, int]:
    """Token vectors of every sentence of ``data`` written to ``to``; -> (sentences, tokens, D)."""
    if to.suffix not in (".safetensors", ".npy"):
        raise ValueError(f"--to must end in .safetensors or .npy; got {to}")
    sentences = read_sentences(data)
    vectors = embed_sentences(run_dir, sentences, batch_size)
    write_vectors(to, sentences, vectors, run_dir)
    return len(sentences), sum(len(v) for v in vectors), vectors[0].shape[1]


def write_vectors(path: Path, sentences: Sequence[Sequence[str]], vectors: Sequence[np.ndarray],
                  run_dir: str | Path) -> None:
    """``.safetensors``: "vectors" (N, D) float32 and "offsets" (S + 1,) int64 (sentence s is rows
    offsets[s]:offsets[s+1]), the run in its metadata. ``.npy``: the (N, D) array, and beside it a
    JSON index (``.json``) of every sentence's tokens and rows."""
    if not vectors:
        raise ValueError("no sentences to write")
    matrix = np.concatenate(vectors).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in vectors])]).astype(np.int64)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({"vectors": matrix, "offsets": offsets}, str(path), metadata={"run": str(run_dir)})
    elif path.suffix == ".npy":
        np.save(path, matrix)
        index = [{"tokens": list(tokens), "start": int(offsets[i]), "end": int(offsets[i + 1])}
                 for i, tokens in enumerate(sentences)]
        path.with_suffix(".json").write_text(json.dumps({"run": str(run_dir), "sentences": index}))
    else:
        raise ValueError(f"--to must end in .safetensors or .npy; got {path}")
