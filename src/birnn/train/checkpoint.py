"""Self-describing checkpoints: weights and optimiser tensors in safetensors, the rest in JSON.

A checkpoint directory holds ``model.safetensors``, ``optimizer.safetensors``
(tensors of the optimiser state and the RNG state) and ``state.json`` (config,
vocabularies, step, epoch, history, optimiser hyper-parameters, and the
SHA-256 of both tensor files). Every file is written to a temporary name and
renamed; ``state.json`` goes last, so a checkpoint is either complete or
reported as damaged. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from birnn import tasks

FORMAT = "birnn.checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or of another format."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _atomic(path: Path, write) -> None:
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch optimiser state_dict -> (tensors keyed "state.<param>.<name>", JSON-able rest)."""
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(
    directory: str | Path,
    model: torch.nn.Module,
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Write a checkpoint atomically (see the module docstring)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    _atomic(directory / "model.safetensors", lambda p: save_file(weights, str(p)))
    extra: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    meta: dict[str, Any] = {}
    if optimizer is not None:
        tensors, meta = flatten_optimizer(optimizer.state_dict())
        extra |= tensors
    _atomic(directory / "optimizer.safetensors", lambda p: save_file(extra, str(p)))
    payload = {
        "format": FORMAT,
        "version": 1,
        **state,
        "optimizer": meta,
        "sha256": {name: _sha256(directory / name) for name in ("model.safetensors", "optimizer.safetensors")},
    }
    _atomic(directory / "state.json", lambda p: p.write_text(json.dumps(payload, indent=1)))


def read_state(directory: str | Path) -> dict[str, Any]:
    """The JSON part of a checkpoint, after checking that its tensor files are intact."""
    directory = Path(directory)
    state_file = directory / "state.json"
    if not state_file.is_file():
        raise CheckpointError(f"{directory}: no checkpoint here (state.json missing)")
    try:
        payload = json.loads(state_file.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{state_file}: damaged (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{state_file}: not a birnn checkpoint")
    digests = payload.get("sha256")
    if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
        raise CheckpointError(f"{state_file}: damaged (no SHA-256 digests of its tensor files)")
    for name, expected in digests.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
        if _sha256(path) != expected:
            raise CheckpointError(f"{path}: damaged or truncated (SHA-256 does not match state.json)")
    return payload


def load(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Load weights (and optimiser and RNG state) into existing objects; return the JSON state."""
    directory = Path(directory)
    payload = read_state(directory)
    try:
        weights = load_file(str(directory / "model.safetensors"))
        extra = load_file(str(directory / "optimizer.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{directory}: unreadable tensors ({exc})") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{directory}: weights do not fit the model ({str(exc).splitlines()[0]})") from None
    if optimizer is not None and payload["optimizer"]:
        optimizer.load_state_dict(unflatten_optimizer(extra, payload["optimizer"]))
    if restore_rng:
        torch.set_rng_state(extra["rng.torch"])
    return payload


def load_task(run_dir: str | Path, which: str = "best") -> Any:
    """The task a run directory holds, rebuilt by its ``kind`` with the trained weights, in eval mode.

    which: "best" (the best dev score; the last epoch's ``checkpoint`` when the run kept no best
    or its best is damaged, with a warning) or "checkpoint".
    """
    run_dir = Path(run_dir)
    if which not in ("best", "checkpoint"):
        raise ValueError(f"which must be 'best' or 'checkpoint'; got {which!r}")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    directory = run_dir / which
    if which == "best":
        try:
            read_state(directory)
        except CheckpointError as exc:
            if (directory / "state.json").exists():
                warnings.warn(f"{exc}; using {run_dir / 'checkpoint'} (the last epoch) instead", stacklevel=2)
            directory = run_dir / "checkpoint"
    state = read_state(directory)
    task = tasks.from_description(state.get("task"), str(directory / "state.json"))
    load(directory, task.model)
    task.model.eval()
    return task
