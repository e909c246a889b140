"""Self-describing checkpoints that switch atomically: tensors in safetensors, the rest in JSON.

On disk a checkpoint ``<run>/checkpoint`` (likewise ``<run>/best``) is a symbolic link to a
version directory next to it::

    checkpoint -> checkpoint-000007/    model.safetensors, optimizer.safetensors, state.json

``optimizer.safetensors`` holds the optimiser's tensors and the RNG state; ``state.json`` the
config, vocabularies, step, epoch, history, optimiser hyper-parameters and the SHA-256 of both
tensor files. Paths through the link (``run/checkpoint/state.json``) work as for a directory.

``save`` never touches the version in use. It writes a new version directory (every file
fsync'ed, ``state.json`` last, then the directory), points a temporary link at it, and
``os.replace``s that link over ``checkpoint`` -- one atomic rename -- before it fsyncs the run
directory and deletes the older versions. A kill at any moment leaves ``checkpoint`` pointing at
a complete version, the previous one or the new one; what a killed save leaves behind (a version
nothing points to, a ``checkpoint.link-<pid>``) is deleted by the next save.

A plain ``checkpoint/`` directory (written by earlier versions of birnn) is first renamed into a
version and linked; between those two renames, the only moment ``checkpoint`` is missing, readers
take the newest version that holds a ``state.json``. Readers resolve the link once, so a save
running meanwhile never mixes two versions' files. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from birnn import tasks

FORMAT = "birnn.checkpoint"
TENSOR_FILES = ("model.safetensors", "optimizer.safetensors")


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt or of another format, or weights that are not finite."""


# ----- writing -----------------------------------------------------------------------------------
def _fsync_directory(path: Path) -> None:
    if os.name == "nt":  # Windows cannot open a directory; NTFS journals the rename itself
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path: str | Path, data: bytes) -> None:
    """Replace the file ``path`` by ``data`` in one step: a reader (or a kill) sees the old file or the new."""
    path = Path(path)
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        _write(temporary, data)
    except OSError as exc:  # e.g. ENOSPC: the old file stays as it was
        temporary.unlink(missing_ok=True)
        raise OSError(exc.errno, f"{path}: not written ({exc.strerror or exc}); the previous version is kept") from exc
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def _versions(directory: Path) -> dict[int, Path]:
    """The version directories ``<name>-<n>`` next to ``directory``, by n."""
    prefix = f"{directory.name}-"
    if not directory.parent.is_dir():
        return {}
    return {
        int(path.name[len(prefix) :]): path
        for path in directory.parent.iterdir()
        if path.name.startswith(prefix) and path.name[len(prefix) :].isdigit() and not path.is_symlink()
    }


def _new_version(directory: Path) -> Path:
    number = max(_versions(directory), default=0) + 1
    while True:
        path = directory.with_name(f"{directory.name}-{number:06d}")
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another writer took this number
            number += 1


def _point(directory: Path, version: Path) -> None:
    """Make ``directory`` a link to ``version`` with one atomic rename, durable once this returns."""
    link = directory.with_name(f"{directory.name}.link-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    os.symlink(version.name, link)
    os.replace(link, directory)
    _fsync_directory(directory.parent)


def _migrate(directory: Path) -> None:
    """Turn a plain checkpoint directory (earlier birnn) into a linked version."""
    version = directory.with_name(f"{directory.name}-{max(_versions(directory), default=0) + 1:06d}")
    os.rename(directory, version)
    _fsync_directory(directory.parent)
    _point(directory, version)


def tidy(directory: Path) -> None:
    """Delete what killed saves left beside a linked checkpoint: temporary links, and every
    version directory but the one the link points to. Call only while holding the run's lock."""
    remove_links(directory)
    if directory.is_symlink():
        current = resolve(directory)
        for path in _versions(directory).values():
            if path != current:
                shutil.rmtree(path, ignore_errors=True)


def remove_links(directory: Path) -> None:
    """Delete the temporary links ``<name>.link-<pid>`` that killed saves left."""
    for path in directory.parent.iterdir():
        if path.name.startswith(f"{directory.name}.link-"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _collect(directory: Path, current: Path) -> None:
    """Delete the versions older than ``current`` and temporary links of killed saves."""
    number = int(current.name.rsplit("-", 1)[1])
    for older, path in _versions(directory).items():
        if older < number:
            shutil.rmtree(path, ignore_errors=True)
    remove_links(directory)


def non_finite(model: torch.nn.Module) -> list[str]:
    """Names of the parameters of ``model`` holding a NaN or an infinity."""
    return [name for name, value in model.named_parameters() if not torch.isfinite(value.detach()).all()]


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
    """Write a new version of the checkpoint ``directory`` and switch to it atomically (module docstring).

    Raises CheckpointError, writing nothing, when a parameter of ``model`` is not finite.
    """
    directory = Path(directory)
    bad = non_finite(model)
    if bad:
        raise CheckpointError(f"{directory}: not saved, parameters {', '.join(bad)} hold NaN or infinity")
    extra: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    meta: dict[str, Any] = {}
    if optimizer is not None:
        tensors, meta = flatten_optimizer(optimizer.state_dict())
        extra |= tensors
    blobs = {
        "model.safetensors": save_tensors({k: v.detach().contiguous() for k, v in model.state_dict().items()}),
        "optimizer.safetensors": save_tensors(extra),
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    if directory.is_dir() and not directory.is_symlink():
        _migrate(directory)
    version = _new_version(directory)
    payload = {
        "format": FORMAT,
        "version": 1,
        **state,
        "optimizer": meta,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()},
    }
    blobs["state.json"] = json.dumps(payload, indent=1).encode()  # last: a version without it is incomplete
    try:
        for name, data in blobs.items():
            _write(version / name, data)
        _fsync_directory(version)
    except OSError as exc:  # e.g. ENOSPC: the link still points at the previous version
        shutil.rmtree(version, ignore_errors=True)
        kept = f"{directory} still holds the previous one" if exists(directory) else f"no earlier {directory.name}"
        raise OSError(exc.errno, f"{version}: checkpoint not written ({exc.strerror or exc}); {kept}") from exc
    _point(directory, version)
    _collect(directory, version)


def remove(directory: str | Path) -> None:
    """Delete the checkpoint ``directory``: its link, every version and leftovers of killed saves."""
    directory = Path(directory)
    if directory.is_symlink():
        directory.unlink()
    elif directory.is_dir():
        shutil.rmtree(directory)
    for path in _versions(directory).values():
        shutil.rmtree(path, ignore_errors=True)
    remove_links(directory)


# ----- reading -----------------------------------------------------------------------------------
def resolve(directory: str | Path) -> Path:
    """The version directory that the checkpoint ``directory`` stands for (``directory`` itself if plain)."""
    directory = Path(directory)
    if directory.is_symlink():
        return directory.parent / os.readlink(directory)
    if directory.exists():
        return directory
    complete = [path for _, path in sorted(_versions(directory).items()) if (path / "state.json").is_file()]
    return complete[-1] if complete else directory


def exists(directory: str | Path) -> bool:
    """Whether ``directory`` holds a checkpoint (complete or damaged: read_state tells which)."""
    directory = Path(directory)
    return directory.is_symlink() or (resolve(directory) / "state.json").is_file()


def _read_version(directory: Path, version: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(JSON state, verified bytes of each tensor file) of one version directory."""
    state_file = version / "state.json"
    if directory.is_symlink() and not version.is_dir():
        raise CheckpointError(f"{directory}: damaged (points to {version.name}, which is missing)")
    if not state_file.is_file():
        raise CheckpointError(f"{directory}: no checkpoint here (state.json missing)")
    try:
        payload = json.loads(state_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{state_file}: damaged ({exc})") from None
    except OSError as exc:
        raise CheckpointError(f"{state_file}: unreadable ({exc.strerror})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{state_file}: not a birnn checkpoint")
    digests = payload.get("sha256")
    if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
        raise CheckpointError(f"{state_file}: damaged (no SHA-256 digests of its tensor files)")
    blobs = {}
    for name, expected in digests.items():
        path = version / name
        try:
            blobs[name] = path.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing") from None
        except OSError as exc:
            raise CheckpointError(f"{path}: unreadable ({exc.strerror})") from None
        if hashlib.sha256(blobs[name]).hexdigest() != expected:
            raise CheckpointError(f"{path}: damaged or truncated (SHA-256 does not match state.json)")
    return payload, blobs


def _read(directory: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    directory = Path(directory)
    version = resolve(directory)
    for _ in range(2):
        try:
            return _read_version(directory, version)
        except CheckpointError:
            now = resolve(directory)
            if now == version:
                raise
            version = now  # a save switched versions while we read (and deleted the old one)
    return _read_version(directory, version)


def read_state(directory: str | Path) -> dict[str, Any]:
    """The JSON part of a checkpoint, after checking that its tensor files are intact."""
    return _read(directory)[0]


def load(
    directory: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Load weights (and optimiser and RNG state) into existing objects; return the JSON state."""
    payload, blobs = _read(directory)
    try:
        weights = load_tensors(blobs["model.safetensors"])
        extra = load_tensors(blobs["optimizer.safetensors"])
    except (SafetensorError, KeyError) as exc:
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


def load_task(run_dir: str | Path, which: str = "best", device: torch.device | str = "cpu") -> Any:
    """The task a run directory holds, rebuilt by its ``kind`` with the trained weights, in eval mode,
    its model on ``device`` (the weights are read on the CPU, whatever device saved them).

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
            if exists(directory):
                warnings.warn(f"{exc}; using {run_dir / 'checkpoint'} (the last epoch) instead", stacklevel=2)
            directory = run_dir / "checkpoint"
    state = read_state(directory)
    task = tasks.from_description(state.get("task"), str(directory / "state.json"))
    load(directory, task.model)
    task.model.to(device).eval()
    return task
