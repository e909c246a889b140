"""Train a tagger on the user's files: read and check every file first, train with dev-based
model selection, and score the best weights on the test file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birnn.data import read_tagged
from birnn.experiments.bilm import load_embedder
from birnn.tasks import TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer, distributed, evaluate, load_task, with_overrides
from birnn.train.device import resolve_device


@dataclass(frozen=True)
class TagRun:
    """Files (CoNLL-U or token/tag columns; ``file_format`` auto|conllu|conll, ``column`` upos|xpos
    for CoNLL-U), the model and how to train it."""

    train_file: Path
    dev_file: Path | None = None
    test_file: Path | None = None
    file_format: str = "auto"
    column: str = "upos"
    model: TaggerConfig = field(default_factory=TaggerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def read(self, path: Path) -> list[tuple[list[str], list[str]]]:
        return read_tagged(path, self.file_format, self.column)

    @classmethod
    def build(cls, train_file: Path, preset: str | None = None, **settings: Any) -> TagRun:
        """The plain run or a preset ("upos", "ner"), with the given settings (by field name; None = not given)."""
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {preset!r}")
        base = cls(train_file=train_file, **PRESETS[preset]) if preset else cls(train_file=train_file)
        return with_overrides(base, **settings)


PRESETS: dict[str, dict[str, Any]] = {
    # lower-cased word ⊕ character BiLSTM of the written form ⊕ shape (Plank et al. 2016; Lample et al.
    # 2016), 2 layers, dropout, singleton <unk>
    "upos": {
        "model": TaggerConfig(model="bilstm", embedding=100, hidden=200, layers=2, dropout=0.33, chars="lstm",
                              char_embedding=50, char_hidden=100, shape_embedding=16, lowercase=True,
                              word_dropout=0.25),
        "train": TrainConfig(epochs=20, batch_size=32, lr=2e-3, clip=5.0, lr_decay=0.95),
    },
    # the same with a constrained CRF, BIOES inside, case/shape features (Lample et al. 2016)
    "ner": {
        "model": TaggerConfig(model="bilstm", embedding=100, hidden=100, layers=1, dropout=0.5, chars="lstm",
                              char_embedding=30, char_hidden=50, shape_embedding=16, word_dropout=0.5,
                              lowercase=True, crf=True, scheme="bioes"),
        "train": TrainConfig(epochs=40, batch_size=16, lr=2e-3, clip=5.0, patience=10),
    },
}


PER_TYPE = ("precision_", "recall_", "support_")  # per chunk type: in the report, not in one-line summaries


def headline(scores: dict[str, float], prefix: str = "") -> dict[str, float]:
    """The scores without the per-type precision, recall and support."""
    return {k: v for k, v in scores.items() if not k.removeprefix(prefix).startswith(PER_TYPE)}


def report_lines(scores: dict[str, float]) -> list[str]:
    """The overall scores, one per line, then for chunk tags a table of precision, recall, F1 and
    support per type."""
    lines = [f"{name} {value:.4f}" for name, value in headline(scores).items() if not name.startswith("f1_")]
    kinds = [name.removeprefix("support_") for name in scores if name.startswith("support_")]
    if kinds:
        width = max(len(kind) for kind in kinds + ["type"])
        lines.append(f"{'type':<{width}}  precision  recall      f1  support")
        lines += [f"{kind:<{width}}  {scores['precision_' + kind]:9.4f}  {scores['recall_' + kind]:6.4f}  "
                  f"{scores['f1_' + kind]:6.4f}  {scores['support_' + kind]:7.0f}" for kind in sorted(kinds)]
    return lines


def epoch_line(epoch: int, row: dict[str, float]) -> str:
    scores = "".join(f", {k} {v:.4f}" for k, v in headline(row, "dev_").items() if k.startswith("dev_"))
    return f"epoch {epoch}: train loss {row['train_loss']:.4f}{scores}, {row['tokens_per_s']:,.0f} tokens/s"


def run_tagger(
    run: TagRun, out: str | Path, resume: bool = False, progress: bool = True, log: Callable[[str], Any] = print,
    device: str = "auto",
) -> dict[str, Any] | None:
    """-> {"best_dev": score or None, "monitor": its name, "test": metrics or None}; under torchrun every
    rank calls this and only the main rank gets the result (the others None). device: auto | cpu |
    cuda | cuda:N (under torchrun, CUDA ranks take cuda:LOCAL_RANK)."""
    where = distributed.rank_device(resolve_device(device))
    distributed.setup_from_env(where)
    train = run.read(run.train_file)
    dev = run.read(run.dev_file) if run.dev_file else None
    test = run.read(run.test_file) if run.test_file else None  # read now: a bad path fails before training
    bilm = load_embedder(run.model.bilm) if run.model.bilm and not resume else None  # a missing run fails here
    task = load_task(out, "checkpoint") if resume else TaggingTask.for_data(run.model, train, bilm)
    if resume:
        task.model.train()
    task.model.to(where)
    dev_examples = task.encode(dev, str(run.dev_file)) if dev else None
    test_examples = task.encode(test, str(run.test_file)) if test else None
    trainer = Trainer(task, task.encode(train, str(run.train_file)), dev_examples, run.train, out,
                      progress=progress, on_epoch=lambda epoch, row: log(epoch_line(epoch, row)), log=log)
    summary = trainer.fit(resume=resume)
    if not distributed.is_main():
        return None
    result: dict[str, Any] = {"best_dev": summary["best_dev"], "monitor": trainer.monitor, "test": None}
    if test_examples is not None:
        result["test"] = evaluate(load_task(out, device=where), test_examples)
    return result


def score_file(run_dir: str | Path, path: Path, file_format: str = "auto", column: str = "upos",
               device: str = "auto") -> dict[str, float]:
    """The metrics of a trained tagger's best weights on a tagged file, computed on ``device``."""
    task = load_task(run_dir, device=resolve_device(device))
    if not isinstance(task, TaggingTask):
        raise ValueError(f"{run_dir}: a {task.kind} run, not a tagger")
    return evaluate(task, task.encode(read_tagged(path, file_format, column), str(path)))
