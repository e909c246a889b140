"""Shared test configuration: hypothesis profiles and the shared data folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ["BIRNN_KERNEL_TUNING"] = "off"  # BiRNN picks kernels by its fixed rule: tests stay deterministic

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# pytest-xdist runs one worker per core: one torch thread each keeps them from spinning against each other
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
