"""Multi-process data parallelism: torchrun + DistributedDataParallel, and nothing home-made.

Launch any training command under ``torchrun`` (e.g. ``torchrun --standalone
--nproc_per_node 2 $(which birnn) train tag ...``): ``setup_from_env`` joins
the process group (nccl when training on CUDA, gloo otherwise), each rank trains on one
device (``rank_device``: cuda:LOCAL_RANK on CUDA), takes its share of each global batch,
DDP averages the gradients, and only the main rank logs and writes checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that logs, plots and writes checkpoints."""
    return rank() == 0


def rank_device(device: torch.device | str) -> torch.device:
    """One device per rank: under torchrun a CUDA device becomes cuda:LOCAL_RANK; others stay."""
    device = torch.device(device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def setup_from_env(device: torch.device | str = "cpu") -> bool:
    """Join the process group torchrun describes in the environment; False when not under torchrun.

    The backend follows the training device, not what the machine has: nccl for CUDA, gloo
    otherwise (nccl cannot reduce CPU tensors)."""
    if is_distributed():
        return True
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    device = rank_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def shard(indices: Sequence[int]) -> list[int]:
    """This rank's share of one global batch: every world_size-th example from rank on."""
    return list(indices[rank() :: world_size()])


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` (on its rank's device) when running distributed, else
    the model itself."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[parameter.device.index])
    return DistributedDataParallel(model)
