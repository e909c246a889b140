"""Cutting a token stream into windows as d2l does: random and sequential partitioning."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from birnn.data import collate
from birnn.data.streams import epoch_offset, random_partition, sequential_partition, windows
from birnn.tasks.language_model import LanguageModelTask, LMConfig


def test_windows_target_is_the_next_token():
    ids = list(range(20))
    out = windows(ids, 6, offset=2)
    assert out[0] == ([2, 3, 4, 5, 6, 7], [3, 4, 5, 6, 7, 8])
    assert [x[0] for x, _ in out] == [2, 8]  # the window starting at 14 has no target for its last token
    with pytest.raises(ValueError, match="steps"):
        windows(ids, 0)


@given(st.integers(2, 12), st.integers(1, 6), st.integers(0, 5), st.integers(0, 50))
def test_sequential_rows_continue_across_batches(steps, batch_size, seed, epoch):
    ids = list(range(300))
    examples = sequential_partition(ids, batch_size, steps, seed, epoch)
    offset = epoch_offset(steps, seed, epoch)
    assert 0 <= offset < steps and examples[0][0][0] == offset
    assert len(examples) % batch_size == 0
    for index, (inputs, targets) in enumerate(examples):
        assert targets == [t + 1 for t in inputs] and len(inputs) == steps
        if index >= batch_size:  # same row, previous batch: the text continues
            assert inputs[0] == examples[index - batch_size][0][-1] + 1


def test_random_partition_moves_its_offset_with_the_epoch_only():
    ids = list(range(500))
    starts = {random_partition(ids, 35, seed=0, epoch=e)[0][0][0] for e in range(20)}
    assert len(starts) > 1 and all(0 <= s < 35 for s in starts)
    assert random_partition(ids, 35, 0, 3) == random_partition(ids, 35, 0, 3)


def test_sequential_partition_rejects_a_short_text():
    with pytest.raises(ValueError, match="too short"):
        sequential_partition(list(range(50)), 8, 35, 0, 0)


@pytest.mark.parametrize("model", ["lstm", "bilstm", "gru"])
def test_sequential_lm_carries_its_state_within_an_epoch(model):
    text = "abcdefgh" * 40
    task = LanguageModelTask.for_text(LMConfig(model=model, hidden=8, layers=1, partition="sequential"), text)
    examples = sequential_partition(task.vocab.encode(text), 4, 10, 0, 0)
    first, second = collate(examples[:4]), collate(examples[4:8])
    task.start_epoch(0)
    task.loss(first)
    carried = task.loss(second)
    task.start_epoch(1)  # back to a zero state
    fresh = task.loss(second)
    assert not torch.allclose(carried, fresh)
    random_task = LanguageModelTask.for_text(LMConfig(model=model, hidden=8, layers=1), text)
    random_task.loss(first)
    assert torch.allclose(random_task.loss(second), fresh)  # same seed, same weights, no carrying
