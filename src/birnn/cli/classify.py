"""`birnn train classify`: a sentence classifier on the user's files, once or by K-fold cross-validation."""

from __future__ import annotations

from pathlib import Path

import click

from birnn.cli.options import POSITIVE, POSITIVE_FLOAT, RUN, from_config, one_line, preset_option
from birnn.data.textclass import FORMATS, TOKENIZERS
from birnn.experiments.classify import PRESETS, ClassifyRun, run_classifier
from birnn.nn.pooling import POOLS
from birnn.tasks import MODELS
from birnn.tasks.classifier import CHAR_ENCODERS

_R = ClassifyRun(train_files=(Path("train.tsv"),))
_PRESETS = {name: ClassifyRun.build([Path("train.tsv")], name) for name in sorted(PRESETS)}
_UNIT = click.FloatRange(0, 1, max_open=True)
_PATH = click.Path(exists=False, path_type=Path)


def _p(path: str, *declarations: str, **settings):
    return preset_option(_R, _PRESETS, path, *declarations, **settings)


@click.command("classify")
@click.option("--train", "train_files", required=True, multiple=True, type=_PATH,
              help="label<TAB>text file, CSV/JSONL, or one file per class (repeat --train, or a folder).")
@click.option("--dev", "dev_file", type=_PATH, help="Dev data (model selection) [default: a share of --train].")
@click.option("--test", "test_file", type=_PATH, help="Test data, scored with the best dev weights.")
@from_config(_R, "file_format", "--format", type=click.Choice(FORMATS))
@from_config(_R, "text_field", help="CSV column / JSON key of the text.")
@from_config(_R, "label_field", help="CSV column / JSON key of the label.")
@from_config(_R, "model.tokenizer", type=click.Choice(TOKENIZERS), help="How text is split into tokens.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="Settings of the documented MR classifiers.")
@_p("cv", type=click.IntRange(min=0), help="K-fold cross-validation, stratified (0: one run).")
@click.option("--max-folds", type=POSITIVE, help="Run only the first N of the --cv folds. [default: all]")
@from_config(_R, "dev_fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
             help="Dev share of the training data, stratified, when there is no --dev.")
@from_config(_R, "split_seed", type=int, help="Seed of the folds and dev shares.")
@_p("model.model", type=click.Choice(sorted(MODELS)))
@_p("model.pool", type=click.Choice(POOLS), help="Sequence vector: summary = [→h_last ; ←h_first].")
@_p("model.hidden", type=POSITIVE, help="Units per direction (a one-directional model gets 2×).")
@_p("model.embedding", type=POSITIVE, help="Word vector size.")
@_p("model.init", type=POSITIVE_FLOAT, help="Word vectors start U(-init, init).")
@_p("model.min_count", type=POSITIVE, help="Words seen fewer times in training are <unk>.")
@_p("model.layers", type=POSITIVE)
@_p("model.chars", type=click.Choice(CHAR_ENCODERS), help="Character encoder per word.")
@_p("model.char_embedding", type=POSITIVE)
@_p("model.char_hidden", type=POSITIVE, help="Character units per direction (CNN: 2× filters).")
@_p("model.lowercase", is_flag=True, help="Look words up lower-cased.")
@_p("model.dropout", type=_UNIT, help="On token vectors, between layers and on the sequence vector.")
@_p("model.word_dropout", type=_UNIT, help="P(a training singleton is read as <unk>).")
@_p("model.bilm", type=click.Path(file_okay=False), help="biLM run: frozen token vectors join the input.")
@_p("model.nb_ngrams", type=click.IntRange(min=0),
    help="Add the Naive Bayes log-odds of the sentence's 1- to N-grams to the scores (0: off).")
@_p("model.nb_alpha", type=POSITIVE_FLOAT, help="Add-alpha smoothing of the Naive Bayes counts.")
@_p("pretrain_epochs", type=click.IntRange(min=0),
    help="First pretrain the encoder as two word LMs on the training text, N epochs (0: off).")
@_p("train.epochs", type=POSITIVE)
@_p("train.batch_size", type=POSITIVE)
@_p("train.optimizer", type=click.Choice(["adam", "sgd"]))
@_p("train.lr", type=POSITIVE_FLOAT)
@_p("train.clip", type=POSITIVE_FLOAT, help="Max gradient norm.")
@_p("train.lr_decay", type=POSITIVE_FLOAT, help="Learning-rate factor per epoch.")
@_p("train.patience", type=POSITIVE, help="Stop after N epochs without a better dev accuracy.")
@from_config(_R, "train.seed", type=int)
@click.option("--out", default=Path("runs/classifier"), show_default=True, type=RUN, help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out (cross-validation: skip finished folds).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when torch sees it) | cpu | cuda:N.")
def classify_command(train_files: tuple[Path, ...], out: Path, resume: bool, quiet: bool, device: str,
                     **settings) -> None:
    """Train a sentence classifier; --cv K prints mean ± sd of accuracy and macro-F1 over K folds.

    Writes checkpoints, metrics.csv, curves.png and confusion.png to --out (one fold-NN/ each with --cv)."""
    run = ClassifyRun.build(train_files, **settings)
    result = run_classifier(run, out, resume, progress=not quiet, log=click.echo, device=device)
    if run.cv:
        folds = f"folds 1-{len(result['folds'])} of {run.cv}:" if run.max_folds else f"{run.cv}-fold"
        click.echo(f"{folds} accuracy {100 * result['accuracy_mean']:.2f} ± {100 * result['accuracy_sd']:.2f}, "
                   f"macro-F1 {100 * result['macro_f1_mean']:.2f} ± {100 * result['macro_f1_sd']:.2f} "
                   f"({result['seconds'] / 60:.1f} min); {out}/cv.json")
        return
    click.echo(f"best dev accuracy {result['best_dev']:.4f}; run in {out}")
    if result["test"] is not None:
        click.echo("test " + one_line(result["test"]))
