"""An ensemble run directory: several runs' best weights saved as one checkpoint (``tasks.ensemble``).

``out/best`` holds every member's weights and description, so the ensemble needs none of the
member directories afterwards; ``load_task(out)``, ``birnn predict``, ``birnn evaluate`` and
``birnn.load`` read it like any run. ``out/summary.json`` names the members and their best dev scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from birnn.tasks.ensemble import ensemble
from birnn.train import checkpoint
from birnn.train.trainer import RunExists, run_lock


def _member_record(run: Path) -> dict[str, Any]:
    state = checkpoint.read_state(run / "best") if checkpoint.exists(run / "best") else {}
    return {"run": str(run.resolve()), "monitor": state.get("monitor"), "best_dev": state.get("best"),
            "epoch": state.get("epoch")}


def save_ensemble(runs: Sequence[str | Path], out: str | Path) -> Any:
    """Combine the best weights of ``runs`` (at least two taggers, or two classifiers, with the same
    labels) into the run directory ``out``, which must not hold a run yet. -> the ensemble task."""
    paths, out = [Path(run) for run in runs], Path(out)
    members = [checkpoint.load_task(run) for run in paths]
    task = ensemble(members)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):
        if checkpoint.exists(out / "checkpoint") or checkpoint.exists(out / "best"):
            raise RunExists(f"{out} already holds a run; choose another --out")
        records = [_member_record(run) for run in paths]
        state = {"task": task.describe(), "members": records, "monitor": getattr(task, "monitor", None)}
        checkpoint.save(out / "best", task.model, state)
        summary = {"kind": "ensemble", "members": records}
        checkpoint.write_atomic(out / "summary.json", json.dumps(summary, indent=1).encode())
    return task
