"""A tagger trained and run on CUDA against the same tagger on the CPU, for whoever has a GPU.

Trains the same small tagger (word ⊕ character BiLSTM, CRF) twice from the same seed — on the
CPU and on ``--device`` (default ``cuda``) — on generated data, for a few epochs, then
compares:

- the training losses per epoch (float32 on two devices: close, not equal);
- the CPU-trained weights loaded onto the GPU (``load_task(device=...)``): predictions equal to
  the CPU's and probabilities within 1e-4;
- prediction tokens/s on each device (batch 256).

Exits 0 after printing the comparison; without CUDA it says so and exits 0 without running.

    python benchmarks/gpu_check.py                 # cuda
    python benchmarks/gpu_check.py --device cuda:1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from birnn.hmm import HMM
from birnn.serve import Predictor
from birnn.tasks import TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer, load_task
from birnn.train.device import resolve_device


def _sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    hmm = HMM([0.4, 0.3, 0.3], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
              [[0.5, 0.3, 0.1, 0.1], [0.1, 0.5, 0.3, 0.1], [0.1, 0.1, 0.2, 0.6]])
    observations, states = hmm.sample(n, 20, seed=seed)
    return [([f"w{int(o)}x{i % 7}" for i, o in enumerate(obs)], ["ABC"[int(s)] for s in st])
            for obs, st in zip(observations, states, strict=True)]


def _train(device: torch.device, data, run_dir: Path, epochs: int) -> tuple[TaggingTask, list[float]]:
    config = TaggerConfig(hidden=64, embedding=32, chars="lstm", char_hidden=16, crf=True)
    task = TaggingTask.for_data(config, data)
    task.model.to(device)
    examples = task.encode(data)
    trainer = Trainer(task, examples, examples[:200], TrainConfig(epochs=epochs, batch_size=32), run_dir,
                      progress=False)
    trainer.fit()
    return task, [row["train_loss"] for row in trainer.history]


def _tokens_per_s(predictor: Predictor, sentences: list[list[str]]) -> float:
    predictor.predict(sentences[:64])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    predictor.predict(sentences)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return sum(map(len, sentences)) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=2000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"gpu_check: skipped — torch {torch.__version__} sees no CUDA device here "
              "(needs a CUDA build of torch and a GPU; run it where `python -c 'import torch; "
              "print(torch.cuda.is_available())'` prints True)")
        return 0
    gpu = resolve_device(args.device)
    data = _sentences(args.sentences)
    sentences = [tokens for tokens, _ in data]
    with tempfile.TemporaryDirectory() as scratch:
        cpu_task, cpu_losses = _train(torch.device("cpu"), data, Path(scratch) / "cpu", args.epochs)
        _, gpu_losses = _train(gpu, data, Path(scratch) / "gpu", args.epochs)
        print(f"{torch.cuda.get_device_name(gpu)}; torch {torch.__version__}")
        for epoch, (c, g) in enumerate(zip(cpu_losses, gpu_losses, strict=True), start=1):
            print(f"epoch {epoch}: train loss cpu {c:.5f}, {gpu} {g:.5f} (difference {abs(c - g):.2e})")
        on_gpu = load_task(Path(scratch) / "cpu", "checkpoint", device=gpu)
        cpu_predictor, gpu_predictor = Predictor(cpu_task), Predictor(on_gpu)
        same = cpu_predictor.predict(sentences) == gpu_predictor.predict(sentences)
        gap = max(float(np.abs(a - b).max()) for a, b in zip(cpu_predictor.predict_proba(sentences[:500]),
                                                             gpu_predictor.predict_proba(sentences[:500]),
                                                             strict=True))
        print(f"CPU-trained weights on {gpu}: predictions {'equal' if same else 'DIFFER'}, "
              f"largest probability difference {gap:.2e}")
        print(f"prediction tokens/s (batch 256): cpu {_tokens_per_s(cpu_predictor, sentences):,.0f}, "
              f"{gpu} {_tokens_per_s(gpu_predictor, sentences):,.0f}")
    return 0 if same and gap < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
