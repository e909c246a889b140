"""`birnn train lm`, `birnn generate`, `birnn train cloze`, `birnn fill`: The Time Machine experiments."""

from __future__ import annotations

import math
from pathlib import Path

import click

from birnn.data.streams import random_partition, sequential_partition, windows
from birnn.data.timemachine import load_characters, load_words
from birnn.tasks.cloze import ClozeConfig, ClozeTask, masked_examples, matched_hidden
from birnn.tasks.language_model import PARTITIONS, LanguageModelTask, LMConfig
from birnn.tasks.tagging import MODELS
from birnn.train import TrainConfig, Trainer, evaluate

_RUN = click.Path(file_okay=False, path_type=Path)
D2L = {
    "batch_size": 32,
    "steps": 35,
    "hidden": 256,
    "layers": 2,
    "optimizer": "sgd",
    "clip": 1.0,
    "epochs": 500,
    "partition": "sequential",
}


def _echo_epoch(epoch: int, row: dict) -> None:
    details = "".join(f", held-out {k[4:]} {v:.4f}" for k, v in row.items() if k.startswith("dev_"))
    click.echo(f"epoch {epoch}: train loss {row['train_loss']:.4f}{details}, {row['tokens_per_s']:,.0f} tokens/s")


def _echo_lm_epoch(epoch: int, row: dict) -> None:
    held = f", held-out perplexity {row['dev_perplexity']:.2f}" if "dev_perplexity" in row else ""
    click.echo(
        f"epoch {epoch}: training perplexity {math.exp(row['train_loss']):.2f}{held}, "
        f"{row['tokens_per_s']:,.0f} tokens/s"
    )


def register(train_group: click.Group, app: click.Group) -> None:
    train_group.add_command(lm_command, "lm")
    train_group.add_command(cloze_command, "cloze")
    app.add_command(generate_command, "generate")
    app.add_command(fill_command, "fill")


@click.command("lm")
@click.option("--data", default="timemachine", show_default=True, help="A text file or the name 'timemachine'.")
@click.option("--max-tokens", default=10000, show_default=True, type=click.IntRange(min=100), help="d2l: 10,000.")
@click.option(
    "--heldout",
    default=2000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Held-out characters: those following the training text (the last 10%% of it if the text ends there).",
)
@click.option("--model", default="lstm", show_default=True, type=click.Choice(sorted(MODELS)))
@click.option(
    "--preset",
    type=click.Choice(["d2l"]),
    help="d2l's settings: batch 32, 35 steps, hidden 256, 2 layers, SGD, clip 1, 500 epochs, sequential.",
)
@click.option(
    "--partition",
    type=click.Choice(PARTITIONS),
    help="[random; d2l sequential] random: independent windows from a new random offset each epoch; "
    "sequential: batch i+1 continues batch i row by row and the state is carried over.",
)
@click.option("--hidden", type=click.IntRange(min=1), help="Units per direction [128; d2l 256].")
@click.option("--layers", type=click.IntRange(min=1), help="[1; d2l 2]")
@click.option("--embedding", default=0, show_default=True, type=click.IntRange(min=0), help="0: one-hot input (d2l).")
@click.option("--batch-size", "--batch", type=click.IntRange(min=1), help="Windows per batch [32].")
@click.option("--steps", type=click.IntRange(min=2), help="Characters per window [35].")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), help="[adam; d2l sgd]")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="[adam 3e-3; d2l lstm 2, bilstm 1]")
@click.option("--clip", type=click.FloatRange(min=0, min_open=True), help="[1]")
@click.option("--epochs", type=click.IntRange(min=1), help="[20; d2l 500]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=Path("runs/lm"), show_default=True, type=_RUN)
@click.option("--resume", is_flag=True)
@click.option("--quiet", is_flag=True)
def lm_command(**o) -> None:
    """Train a character language model on The Time Machine (or any text); report training,
    held-out and causal perplexity."""
    preset = D2L if o["preset"] == "d2l" else {}
    pick = {
        k: o[k] if o.get(k) is not None else preset.get(k, default)
        for k, default in (
            ("hidden", 128),
            ("layers", 1),
            ("batch_size", 32),
            ("steps", 35),
            ("optimizer", "adam"),
            ("clip", 1.0),
            ("epochs", 20),
            ("partition", "random"),
        )
    }
    lr = o["lr"] or ((1.0 if MODELS[o["model"]][1] else 2.0) if pick["optimizer"] == "sgd" else 3e-3)
    corpus = load_characters(o["data"])
    text, held_text = corpus[: o["max_tokens"]], corpus[o["max_tokens"] : o["max_tokens"] + o["heldout"]]
    if o["heldout"] and len(held_text) <= (o["steps"] or 35):
        cut = int(0.9 * len(text))
        text, held_text = text[:cut], text[cut:]
    if o["resume"]:
        task = LanguageModelTask.from_run(o["out"])
        task.model.train()
    else:
        task = LanguageModelTask.for_text(
            LMConfig(o["model"], pick["hidden"], pick["layers"], o["embedding"], o["seed"], pick["partition"]), text
        )
    train, held = task.vocab.encode(text), task.vocab.encode(held_text)
    click.echo(f"{len(train):,} training and {len(held):,} held-out characters")
    sequential = task.config.partition == "sequential"
    config = TrainConfig(
        epochs=pick["epochs"],
        batch_size=pick["batch_size"],
        optimizer=pick["optimizer"],
        lr=lr,
        clip=pick["clip"],
        seed=o["seed"],
        shuffle=not sequential,
    )
    steps, batch_size, seed = pick["steps"], pick["batch_size"], o["seed"]
    if sequential:
        sequential_partition(train, batch_size, steps, seed, 0)  # too short a text fails here, before training

        def epoch_data(epoch: int) -> list:
            return sequential_partition(train, batch_size, steps, seed, epoch)
    else:

        def epoch_data(epoch: int) -> list:
            return random_partition(train, steps, seed, epoch)

    trainer = Trainer(
        task,
        epoch_data,
        windows(held, pick["steps"]) or None,
        config,
        o["out"],
        progress=not o["quiet"],
        on_epoch=_echo_lm_epoch,
    )
    summary = trainer.fit(resume=o["resume"])
    task.model.eval()
    click.echo(f"training perplexity (last epoch, as d2l reports it) {math.exp(summary['last']['train_loss']):.2f}")
    train_ppl = evaluate(task, windows(train, pick["steps"]))["perplexity"]
    click.echo(f"training perplexity (evaluated after training, each window from zero) {train_ppl:.2f}")
    click.echo(f"causal training perplexity (prefix only) {task.causal_perplexity(train, pick['steps']):.2f}")
    if len(held) > pick["steps"]:
        click.echo(f"held-out perplexity {evaluate(task, windows(held, pick['steps']))['perplexity']:.2f}")
        click.echo(f"causal held-out perplexity (prefix only) {task.causal_perplexity(held, pick['steps']):.2f}")
    click.echo(f"time traveller -> {task.generate('time traveller', 50)!r}")


@click.command("generate")
@click.argument("run", type=_RUN)
@click.option("--prefix", default="time traveller", show_default=True)
@click.option("--chars", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(min=0), help="0: greedy.")
@click.option("--seed", default=0, show_default=True, type=int)
def generate_command(run: Path, prefix: str, chars: int, temperature: float, seed: int) -> None:
    """Continue PREFIX with a trained language model of RUN."""
    click.echo(LanguageModelTask.from_run(run).generate(prefix.lower(), chars, temperature, seed))


@click.command("cloze")
@click.option("--data", default="timemachine", show_default=True, help="A text file or the name 'timemachine'.")
@click.option("--unit", default="char", show_default=True, type=click.Choice(["char", "word"]))
@click.option("--model", default="bilstm", show_default=True, type=click.Choice(sorted(MODELS)))
@click.option(
    "--hidden",
    default=128,
    show_default=True,
    type=click.IntRange(min=1),
    help="Per direction; a left-to-right model gets as many recurrent parameters as this bidirectional one.",
)
@click.option("--embedding", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--steps", default=64, show_default=True, type=click.IntRange(min=2), help="Tokens per window.")
@click.option("--rate", default=0.15, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--copies", default=2, show_default=True, type=click.IntRange(min=1), help="Masked copies per window.")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=3e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=Path("runs/cloze"), show_default=True, type=_RUN)
@click.option("--quiet", is_flag=True)
def cloze_command(**o) -> None:
    """Train a model to fill masked characters (or words) from both sides; held out: the last 10%."""
    tokens = list(load_characters(o["data"])) if o["unit"] == "char" else load_words(o["data"])
    hidden = o["hidden"]
    if not MODELS[o["model"]][1]:  # left to right: as many recurrent parameters as the bidirectional model
        hidden = matched_hidden(o["embedding"], o["hidden"])
    config = ClozeConfig(o["unit"], o["model"], hidden, o["embedding"], 1, o["rate"], o["seed"])
    task = ClozeTask.for_tokens(config, tokens)
    ids = task.vocab.encode(tokens)
    cut = int(0.9 * len(ids))
    train = masked_examples(ids[:cut], task.mask_id, o["steps"], o["rate"], o["copies"], o["seed"])
    held = masked_examples(ids[cut:], task.mask_id, o["steps"], o["rate"], 1, o["seed"] + 1)
    config = TrainConfig(epochs=o["epochs"], batch_size=64, lr=o["lr"], seed=o["seed"])
    Trainer(task, train, held, config, o["out"], progress=not o["quiet"], on_epoch=_echo_epoch).fit()
    parameters = sum(p.numel() for p in task.model.parameters())
    click.echo(
        f"held-out masked-{o['unit']} accuracy {evaluate(task, held)['accuracy']:.4f} ({parameters:,} parameters)"
    )


@click.command("fill")
@click.argument("run", type=_RUN)
@click.argument("text")
@click.option("--top", default=5, show_default=True, type=click.IntRange(min=1))
def fill_command(run: Path, text: str, top: int) -> None:
    """Fill each blank of TEXT: '_' for a character model, '[MASK]' for a word model."""
    task = ClozeTask.from_run(run)
    for number, candidates in enumerate(task.fill(text, top), start=1):
        shown = "  ".join(f"{token!r} {p:.3f}" for token, p in candidates)
        click.echo(f"blank {number}: {shown}")
