"""Pretraining a classifier's encoder as two word LMs (`--pretrain-epochs`): each direction predicts
only words it has not read (changing them leaves its scores unchanged, to the bit), the loss is
the mean NLL of the docstring computed by hand, and a new classifier starts from the pretrained
encoder and word vectors."""

from __future__ import annotations

import json

import pytest
import torch

from birnn.cli import main
from birnn.tasks import ClassificationTask, ClassifierConfig, EncoderLMTask
from birnn.tasks.encoder_lm import neighbour_targets, transfer
from test_classify import SMALL, polarity

SENTENCES = [["a", "b", "c", "d"], ["c", "a"], ["d", "d", "b"], ["a", "b", "c", "d"]]


def _task(model: str = "bilstm", **settings) -> EncoderLMTask:
    config = ClassifierConfig(model=model, **(SMALL | settings))
    task = EncoderLMTask.for_text(config, SENTENCES)
    task.model.eval()
    return task


def test_neighbour_targets_put_the_boundary_past_both_ends():
    words, lengths = torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])
    following, preceding = neighbour_targets(words, lengths, 99)
    assert following[0].tolist() == [6, 7, 99] and following[1, :2].tolist() == [9, 99]
    assert preceding[0].tolist() == [99, 5, 6] and preceding[1, :2].tolist() == [99, 8]


def test_each_direction_scores_only_from_words_it_has_not_to_predict():
    """→ scores at t depend on w_{≤t} only, ← scores on w_{≥t} only: change w_3 and the forward
    scores at t < 3 stay the same to the bit; change w_0 and the backward scores at t > 0 do."""
    task = _task()
    base = task.collate(task.unlabelled([["a", "b", "c", "d"]]))
    changed = task.collate(task.unlabelled([["a", "b", "c", "a"]]))
    first = task.collate(task.unlabelled([["d", "b", "c", "d"]]))
    with torch.no_grad():
        f0, b0 = task.model(base.inputs, base.lengths)
        f1, _ = task.model(changed.inputs, changed.lengths)
        _, b2 = task.model(first.inputs, first.lengths)
    assert torch.equal(f0[0, :3], f1[0, :3]) and not torch.equal(f0[0, 3], f1[0, 3])
    assert torch.equal(b0[0, 1:], b2[0, 1:]) and not torch.equal(b0[0, 0], b2[0, 0])


def test_the_loss_is_the_mean_nll_of_both_directions():
    task = _task()
    batch = task.collate(task.unlabelled(SENTENCES[:3]))
    with torch.no_grad():
        following, preceding = task.model(batch.inputs, batch.lengths)
        total, count = 0.0, 0
        for b, n in enumerate(batch.lengths.tolist()):
            ids = batch.inputs[b, :n].tolist()
            boundary = len(task.words)
            for t in range(n):
                after = ids[t + 1] if t + 1 < n else boundary
                before = ids[t - 1] if t > 0 else boundary
                total -= torch.log_softmax(following[b, t], -1)[after].item()
                total -= torch.log_softmax(preceding[b, t], -1)[before].item()
                count += 1
        assert task.loss(batch).item() == pytest.approx(total / (2 * count), rel=1e-5)
        metrics = task.metrics([task.evaluate_batch(batch)])
    assert metrics["log_likelihood"] == pytest.approx(-total / (2 * count), rel=1e-5)


def test_a_one_directional_encoder_has_only_the_forward_head():
    task = _task("lstm")
    batch = task.collate(task.unlabelled(SENTENCES))
    with torch.no_grad():
        following, preceding = task.model(batch.inputs, batch.lengths)
        assert preceding is None and following.shape[-1] == len(task.words) + 1
        assert "perplexity_backward" not in task.metrics([task.evaluate_batch(batch)])


def test_transfer_copies_the_encoder_and_the_shared_words():
    data = polarity(40)
    lm = EncoderLMTask.for_text(ClassifierConfig(**SMALL), [tokens for tokens, _ in data] + [["zebra", "zebra"]])
    classifier = ClassificationTask.for_data(ClassifierConfig(**SMALL, pool="summary"), data[:20])
    copied = transfer(lm, classifier)
    shared = [w for w in classifier.words.itos[2:] if w in lm.words]
    assert copied == len(shared) > 0
    source, target = lm.network.classifier, classifier.network
    for name, value in source.encoder.state_dict().items():
        assert torch.equal(target.encoder.state_dict()[name], value)
    for word in shared:
        assert torch.equal(target.embedding.weight[classifier.words.stoi[word]],
                           source.embedding.weight[lm.words.stoi[word]])
    other = ClassificationTask.for_data(ClassifierConfig(**(SMALL | {"hidden": 6})), data)
    with pytest.raises(ValueError, match=r"other settings: hidden=8 \(this classifier: 6\)"):
        transfer(lm, other)


def test_cross_validation_pretrains_once_and_every_fold_starts_from_it(tmp_path, capsys):
    data = tmp_path / "train.tsv"
    data.write_text("".join(f"{label}\t{' '.join(tokens)}\n" for tokens, label in polarity(60)))
    out = tmp_path / "cv"
    arguments = ["train", "classify", "--train", str(data), "--cv", "3", "--pretrain-epochs", "2", "--epochs", "1",
                 "--hidden", "8", "--embedding", "8", "--quiet", "--out", str(out)]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert printed.count("pretraining epoch") == 2 and printed.count("starting from the pretrained encoder") == 3
    assert json.loads((out / "pretrain" / "result.json").read_text())["best_dev"] < 0
    assert main([*arguments, "--resume"]) == 0  # all finished: nothing is pretrained again
    assert "pretraining epoch" not in capsys.readouterr().out
