"""The biLM: two one-directional character LMs, their token vectors (flair's recipe) checked against
running each LM on the prefix or suffix alone, padding/batch invariance, causality to the bit,
training and exact resume, `birnn train bilm` / `birnn embed`, and taggers reading the vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from birnn.cli import main
from birnn.experiments.bilm import BiLMRun, load_embedder, read_lines, read_sentences, run_bilm, split_lines
from birnn.experiments.tagging import TagRun, run_tagger
from birnn.tasks import BiLMConfig, BiLMTask, TaggerConfig, TaggingTask
from birnn.tasks.bilm import MARK, collate, sentence_example
from birnn.train import CheckpointError, TrainConfig, Trainer, evaluate, load_task
from train_helpers import tagged_sentences, write_conll

SENTENCES = [["The", "cat", "sat"], ["a"], ["Dogs", "bark", "at", "the", "moon", "!"], ["x", "yz"]]


def _task(hidden: int = 12, cell: str = "lstm", layers: int = 1) -> BiLMTask:
    lines = [" ".join(s) for s in SENTENCES] + ["ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz !?"]
    task = BiLMTask.for_text(BiLMConfig(cell=cell, hidden=hidden, layers=layers, embedding=6), lines)
    task.model.eval()
    return task


def _text(n: int, seed: int = 0) -> list[str]:
    """Lines of a tiny regular language: a left-to-right and a right-to-left model can both learn it."""
    rng = np.random.default_rng(seed)
    words = ["ab", "abc", "cab", "bca", "aab"]
    return [" ".join(words[i] for i in rng.integers(len(words), size=rng.integers(2, 7))) for _ in range(n)]


def test_sentence_positions_point_at_each_token():
    task = _task()
    ids, firsts, lasts = sentence_example(task.vocab, SENTENCES[2])
    text = MARK + " ".join(SENTENCES[2]) + MARK
    assert task.vocab.decode(ids) == list(text)
    assert [text[a : z + 1] for a, z in zip(firsts, lasts, strict=True)] == SENTENCES[2]


@pytest.mark.parametrize("cell,layers", [("lstm", 1), ("gru", 2)])
def test_gathered_states_equal_each_lm_run_on_the_prefix_or_suffix_alone(cell, layers):
    """→h after a token's last character: the forward LM on MARK + the text up to it; ←h after its first
    character from the right: the backward LM on the reversed string from the end marker down to it."""
    task = _task(cell=cell, layers=layers)
    vectors, lengths = task.embedder()(SENTENCES)
    assert vectors.shape == (4, 6, 24) and lengths.tolist() == [3, 1, 6, 2]
    with torch.no_grad():
        for b, tokens in enumerate(SENTENCES):
            ids, firsts, lasts = sentence_example(task.vocab, tokens)
            for k, (a, z) in enumerate(zip(firsts, lasts, strict=True)):
                prefix = torch.tensor([ids[: z + 1]])
                suffix = torch.tensor([ids[a:][::-1]])
                expected_f = task.model.forward_lm.states(prefix)[0, -1]
                expected_b = task.model.backward_lm.states(suffix)[0, -1]
                torch.testing.assert_close(vectors[b, k, :12], expected_f, atol=1e-6, rtol=0)
                torch.testing.assert_close(vectors[b, k, 12:], expected_b, atol=1e-6, rtol=0)
            assert not vectors[b, len(tokens):].any()  # zero at padding tokens


def test_token_vectors_do_not_depend_on_padding_or_the_batch():
    embedder = _task().embedder()
    alone = [embedder([tokens])[0][0, : len(tokens)] for tokens in SENTENCES]
    together, _ = embedder(SENTENCES)
    reordered, _ = embedder(SENTENCES[::-1] + [["a", "much", "longer", "sentence", "than", "the", "others"]])
    for b, tokens in enumerate(SENTENCES):
        torch.testing.assert_close(together[b, : len(tokens)], alone[b], atol=1e-6, rtol=0)
        torch.testing.assert_close(reordered[3 - b, : len(tokens)], alone[b], atol=1e-6, rtol=0)
    listed = embedder.vectors_of(SENTENCES, batch_size=3)
    for v, expected in zip(listed, alone, strict=True):
        torch.testing.assert_close(v, expected, atol=1e-6, rtol=0)


def test_forward_half_sees_only_the_left_context_and_backward_half_only_the_right_to_the_bit():
    embedder = _task().embedder()
    base = ["Dogs", "bark", "at", "the", "moon", "!"]
    later = ["Dogs", "bark", "at", "THE", "noon", "?"]  # same lengths: the batch shape is unchanged
    earlier = ["cats", "BARK", "at", "the", "moon", "!"]
    v, _ = embedder([base])
    v_later, _ = embedder([later])
    v_earlier, _ = embedder([earlier])
    assert torch.equal(v[0, :3, :12], v_later[0, :3, :12])  # forward part of tokens before the change
    assert not torch.equal(v[0, 3:, :12], v_later[0, 3:, :12])
    assert not torch.equal(v[0, :3, 12:], v_later[0, :3, 12:])  # the backward part has read the change
    assert torch.equal(v[0, 2:, 12:], v_earlier[0, 2:, 12:])  # backward part of tokens after the change
    assert not torch.equal(v[0, 2:, :12], v_earlier[0, 2:, :12])


def test_loss_is_each_directions_next_character_nll_and_ignores_padding():
    task = _task()
    lines = ["ab cab", "abc", "b"]
    examples = task.text_examples(lines, steps=100)
    loss = task.loss(collate(examples))
    total, count = 0.0, 0
    with torch.no_grad():
        for line in lines:
            ids = task.vocab.encode(MARK + line + MARK)
            for lm, seq in ((task.model.forward_lm, ids), (task.model.backward_lm, ids[::-1])):
                logits = lm(torch.tensor([seq[:-1]]))[0]
                total += float(torch.nn.functional.cross_entropy(logits, torch.tensor(seq[1:]), reduction="sum"))
            count += len(ids) - 1
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def test_long_lines_are_cut_with_every_character_predicted_once():
    task = _task()
    pieces = task.text_examples(["abcabcabcab"], steps=4)  # 13 marked characters
    assert [len(ids) for ids, _, _ in pieces] == [5, 5, 5]
    assert sum(len(ids) - 1 for ids, _, _ in pieces) == 12
    assert split_lines(list("abcdefghij"), 0.15) == (list("abcdefgh"), list("ij"))


def test_both_directions_learn_and_resume_is_exact(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(_text(400)) + "\n")
    run = BiLMRun(texts=(str(text),), heldout=0.1, model=BiLMConfig(hidden=24, embedding=8),
                  train=TrainConfig(epochs=2, batch_size=16, lr=1e-2))
    report = run_bilm(run, tmp_path / "a", progress=False, log=lambda _: None)
    history = json.loads((tmp_path / "a" / "summary.json").read_text())["last"]
    assert history["dev_perplexity_forward"] < 3.5 and history["dev_perplexity_backward"] < 3.5
    assert report["training characters"] > 5000
    one = BiLMRun(texts=run.texts, heldout=0.1, model=run.model, train=TrainConfig(epochs=1, batch_size=16, lr=1e-2))
    run_bilm(one, tmp_path / "b", progress=False, log=lambda _: None)
    run_bilm(run, tmp_path / "b", resume=True, progress=False, log=lambda _: None)
    a, b = load_task(tmp_path / "a", "checkpoint"), load_task(tmp_path / "b", "checkpoint")
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def _bilm_run(tmp_path) -> tuple:
    sentences = tagged_sentences(120)
    lines = [" ".join(tokens) for tokens, _ in sentences]
    task = BiLMTask.for_text(BiLMConfig(hidden=8, embedding=4), lines)
    Trainer(task, task.text_examples(lines, 100), None, TrainConfig(epochs=1, batch_size=32), tmp_path / "bilm",
            progress=False).fit()
    return sentences, tmp_path / "bilm"


def test_a_tagger_reads_frozen_bilm_vectors_and_carries_them_when_loaded(tmp_path):
    sentences, bilm_dir = _bilm_run(tmp_path)
    config = TaggerConfig(hidden=8, embedding=8, bilm=str(bilm_dir))
    with pytest.raises(ValueError, match="bilm"):
        TaggingTask.for_data(config, sentences)
    embedder = load_embedder(bilm_dir)
    frozen = {k: v.clone() for k, v in embedder.state_dict().items()}
    task = TaggingTask.for_data(config, sentences, embedder)
    data = task.encode(sentences)
    assert len(data[0]) == 4 and data[0][3].shape == (len(sentences[0][0]), 16)
    Trainer(task, data[:100], data[100:], TrainConfig(epochs=2, lr=1e-2, batch_size=16), tmp_path / "tag",
            progress=False).fit()
    for k, v in task.network.bilm.state_dict().items():
        assert torch.equal(v, frozen[k]), k  # frozen: training left the biLM as it was
    assert task.describe()["bilm"]["kind"] == "bilm" and task.describe()["config"]["bilm"] == str(bilm_dir)
    loaded = load_task(tmp_path / "tag", "checkpoint")  # the weights task holds after its last epoch
    # prediction computes the vectors in collate (encode_input brings none); encode computed them up front
    predicted = loaded.collate([loaded.encode_input(tokens) for tokens, _ in sentences[100:]])
    encoded = loaded.collate(loaded.encode(sentences[100:]))
    torch.testing.assert_close(predicted.context, encoded.context, atol=1e-6, rtol=0)
    assert loaded.predict(predicted) == task.predict(encoded)
    assert evaluate(loaded, data[100:])["accuracy"] == evaluate(task, data[100:])["accuracy"]


def test_a_missing_bilm_run_fails_before_training(tmp_path):
    write_conll(tmp_path / "train.conll", tagged_sentences(20))
    run = TagRun(train_file=tmp_path / "train.conll", model=TaggerConfig(bilm=str(tmp_path / "nowhere")))
    with pytest.raises(CheckpointError, match="nowhere"):
        run_tagger(run, tmp_path / "tag", progress=False, log=lambda _: None)
    assert main(["train", "tag", "--train", str(tmp_path / "train.conll"), "--bilm", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "tag2"), "--quiet"]) == 2


def test_cli_trains_a_bilm_and_writes_token_vectors(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(_text(60)) + "\n")
    run = tmp_path / "bilm"
    assert main(["train", "bilm", "--text", str(text), "--hidden", "8", "--embedding", "4", "--epochs", "1",
                 "--heldout", "0.1", "--out", str(run), "--quiet"]) == 0
    assert "held-out perplexity forward" in capsys.readouterr().out
    data = tmp_path / "sentences.txt"
    data.write_text("ab cab\nabc bca aab\n")
    assert main(["embed", str(run), "--data", str(data), "--to", str(tmp_path / "v.safetensors")]) == 0
    assert main(["embed", str(run), "--data", str(data), "--to", str(tmp_path / "v.npy")]) == 0
    from safetensors.numpy import load_file

    saved = load_file(str(tmp_path / "v.safetensors"))
    expected = load_embedder(run).vectors_of([["ab", "cab"], ["abc", "bca", "aab"]])
    assert saved["offsets"].tolist() == [0, 2, 5]
    np.testing.assert_allclose(saved["vectors"], torch.cat(expected).numpy(), atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), saved["vectors"])
    index = json.loads((tmp_path / "v.json").read_text())
    assert index["sentences"][1] == {"tokens": ["abc", "bca", "aab"], "start": 2, "end": 5}
    assert main(["embed", str(run), "--data", str(data), "--to", str(tmp_path / "v.txt")]) == 2
    assert main(["train", "bilm", "--text", "no-such-corpus", "--out", str(tmp_path / "x")]) == 2


def test_conll_files_without_tags_are_read_as_text(tmp_path):
    """A biLM wants only the tokens: a column file of tokens alone, a tag column of '_', a CoNLL-U
    file without UPOS are text; a tagged file gives its tokens."""
    tokens_only = tmp_path / "tokens.conll"
    tokens_only.write_text("The\ncat\nsat\n\nIt\nran\n")
    underscores = tmp_path / "underscores.conll"
    underscores.write_text("The\t_\ncat\t_\n\nIt\t_\n")
    no_upos = tmp_path / "no_upos.conllu"
    no_upos.write_text("# text = Hi there\n1\tHi\thi\t_\t_\t_\t0\troot\t_\t_\n2\tthere\tthere\t_\t_\t_\t1\tdep\t_\t_\n")
    tagged = tmp_path / "tagged.conll"
    write_conll(tagged, [(["A", "dog"], ["DET", "NOUN"])])
    assert read_lines(str(tokens_only)) == ["The cat sat", "It ran"]
    assert read_sentences(tokens_only) == [["The", "cat", "sat"], ["It", "ran"]]
    assert read_lines(str(underscores)) == ["The cat", "It"]
    assert read_sentences(no_upos) == [["Hi", "there"]]
    assert read_sentences(tagged) == [["A", "dog"]]
