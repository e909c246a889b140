"""Run directories damaged in every way a disk, a kill or a hand can: ``birnn.load`` and
``load_task`` give the model or an error naming the run -- never another exception."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from _fuzz import FUZZ, clean_or_named
from hypothesis import given
from hypothesis import strategies as st

import birnn
from birnn.tasks.tagging import TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer, load_task
from birnn.train import checkpoint as ckpt
from train_helpers import tagged_sentences

_FILES = ("state.json", "model.safetensors", "optimizer.safetensors")
_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 10**12), st.floats(), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@functools.lru_cache(maxsize=1)
def _trained_run() -> Path:
    sentences = tagged_sentences(24, seed=1)
    task = TaggingTask.for_data(TaggerConfig(model="bilstm", hidden=3, embedding=3, chars="none"), sentences)
    data = task.encode(sentences)
    run = Path(tempfile.mkdtemp(prefix="birnn-fuzz-run-")) / "run"
    Trainer(task, data[:20], data[20:], TrainConfig(epochs=1, batch_size=8), run, progress=False).fit()
    return run


@st.composite
def damaged_runs(draw) -> Path:
    run = Path(tempfile.mkdtemp(prefix="birnn-fuzz-")) / "run"
    shutil.copytree(_trained_run(), run, symlinks=True)
    for which in draw(st.lists(st.sampled_from(["checkpoint", "best"]), min_size=1, max_size=2, unique=True)):
        version = ckpt.resolve(run / which)
        name = draw(st.sampled_from(_FILES))
        target = version / name
        damage = draw(st.integers(0, 5))
        if damage == 0:
            target.unlink()
        elif damage == 1:  # cut short
            data = target.read_bytes()
            target.write_bytes(data[: draw(st.integers(0, max(len(data) - 1, 0)))])
        elif damage == 2:  # one byte changed
            data = bytearray(target.read_bytes())
            if data:
                data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
            target.write_bytes(bytes(data))
        elif damage == 3 and name == "state.json":  # one key replaced by anything, or removed
            state = json.loads(target.read_text())
            key = draw(st.sampled_from(sorted(state) + ["extra"]))
            if draw(st.booleans()):
                state.pop(key, None)
            else:
                state[key] = draw(_VALUE)
            target.write_text(json.dumps(state))
        elif damage == 4:  # the link points nowhere, or the version is gone
            shutil.rmtree(version)
        else:
            target.write_bytes(draw(st.binary(max_size=200)))
    return run


@pytest.mark.filterwarnings("ignore:.*instead:UserWarning")  # the fallback to checkpoint/ is the point
@FUZZ
@given(damaged_runs(), st.sampled_from(["best", "checkpoint"]))
def test_damaged_run_directories(run, which):
    model = clean_or_named(lambda: birnn.load(run, which), str(run))
    if model is not None:
        assert model.predict([["w1", "w2"]])[0].__len__() == 2
    clean_or_named(lambda: load_task(run, which), str(run))
    clean_or_named(lambda: ckpt.read_state(run / which), str(run))
