"""Device plumbing without a GPU: device names, batches moved to the model's device by the trainer
and the predictor (checked with a device-recording mock on the ``meta`` device), no tensor created
on the default device inside a training step or a prediction, checkpoints loaded onto any device,
and DDP's backend chosen by the training device."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from birnn.serve import Predictor
from birnn.tasks import TaggerConfig, TaggingTask
from birnn.train import TrainConfig, Trainer, distributed, load_task
from birnn.train import device as devices
from train_helpers import tagged_sentences

FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.tensor, torch.as_tensor,
             torch.rand, torch.randn, torch.randint, torch.eye, torch.linspace}


class DefaultDeviceFactories(TorchFunctionMode):
    """Records every tensor factory called without ``device=``: on a GPU it would make a CPU tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            self.calls.append(func.__name__)
        return func(*args, **kwargs)


CONFIGS = [TaggerConfig(hidden=8, embedding=6, chars="lstm", char_hidden=4, shape_embedding=3, crf=True,
                        word_dropout=0.3),
           TaggerConfig(model="bigru", hidden=8, embedding=6, chars="cnn", char_hidden=4, layers=2)]


@pytest.mark.parametrize("config", CONFIGS, ids=["lstm-chars-crf", "gru-cnn"])
def test_steps_and_predictions_create_no_tensor_on_the_default_device(config):
    sentences = tagged_sentences(12)
    task = TaggingTask.for_data(config, sentences)
    batch = task.collate(task.encode(sentences))  # built on the CPU, then moved: outside the check
    with DefaultDeviceFactories() as recorder:
        task.model.train()
        task.loss(batch).backward()
        task.model.eval()
        with torch.no_grad():
            task.predict(batch), task.predict_proba(batch), task.embed(batch)
    assert recorder.calls == []


def test_trainer_and_predictor_move_every_batch_to_the_models_device(tmp_path, monkeypatch):
    """The model's device is mocked as ``meta``: every batch the trainer and the predictor hand to the
    task is first moved there (recorded, then the CPU batch is used so the step can run)."""
    sentences = tagged_sentences(20)
    task = TaggingTask.for_data(CONFIGS[1], sentences)
    moved: list[set[str]] = []

    def record(batch, device):
        moved.append({value.device.type for value in devices.to_device(batch, device)
                      if isinstance(value, torch.Tensor)})
        return batch

    for module in ("birnn.train.trainer", "birnn.serve.predictor"):
        monkeypatch.setattr(f"{module}.model_device", lambda model: torch.device("meta"))
        monkeypatch.setattr(f"{module}.to_device", record)
    examples = task.encode(sentences)
    Trainer(task, examples, examples[:4], TrainConfig(epochs=1, batch_size=8), tmp_path, progress=False).fit()
    Predictor(task, batch_size=8).predict([tokens for tokens, _ in sentences[:10]])
    assert len(moved) == 3 + 1 + 2 and all(kinds == {"meta"} for kinds in moved)  # train, dev, predict


def test_checkpoints_load_onto_any_device(tmp_path):
    sentences = tagged_sentences(10)
    task = TaggingTask.for_data(CONFIGS[0], sentences)
    Trainer(task, task.encode(sentences), None, TrainConfig(epochs=1), tmp_path, progress=False).fit()
    loaded = load_task(tmp_path, "checkpoint", device="meta")
    assert {p.device.type for p in loaded.model.parameters()} == {"meta"}
    assert {b.device.type for b in loaded.model.buffers()} == {"meta"}  # the CRF's constraint masks too
    on_cpu = load_task(tmp_path, "checkpoint", device=torch.device("cpu"))
    for (name, mine), theirs in zip(task.model.state_dict().items(), on_cpu.model.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs), name


def test_device_names(monkeypatch):
    assert devices.resolve_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "cuda:x", 3):
        with pytest.raises(ValueError, match="device must be one of"):
            devices.resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        devices.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert devices.resolve_device("auto") == torch.device("cuda")
    assert devices.resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        devices.resolve_device("cuda:1")


def test_to_device_keeps_the_batch_type():
    task = TaggingTask.for_data(CONFIGS[0], tagged_sentences(4))
    batch = task.collate(task.encode(tagged_sentences(4)))
    moved = devices.to_device(batch, torch.device("meta"))
    assert type(moved) is type(batch) and moved.inputs.device.type == "meta" and moved.shapes.is_meta
    assert devices.to_device([batch.lengths, 3], torch.device("meta"))[1] == 3


@pytest.mark.parametrize("device, backend", [("cpu", "gloo"), ("cuda", "nccl")])
def test_ddp_uses_nccl_only_when_training_on_cuda(monkeypatch, device, backend):
    """CUDA present on the machine is not enough: a CPU training needs gloo (nccl reduces no CPU tensors)."""
    chosen: list[str] = []
    monkeypatch.setattr(distributed, "is_distributed", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: chosen.append(backend))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: chosen.append(str(device)))
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    assert distributed.setup_from_env(device)
    assert chosen == (["cuda:1", "nccl"] if backend == "nccl" else ["gloo"])
    assert distributed.rank_device(device) == (torch.device("cuda", 1) if device == "cuda" else torch.device("cpu"))


def test_the_recorder_sees_a_factory_without_device():
    with DefaultDeviceFactories() as recorder:
        torch.zeros(2, device="cpu"), torch.arange(3)
    assert recorder.calls == ["arange"]


TEXT = "the time traveller (for so it will be convenient to speak of him) was expounding a recondite matter to us. "


def test_language_model_cloze_and_bilm_steps_create_no_tensor_on_the_default_device():
    """A training step, evaluation and generate / fill / embed of the three language models: every
    tensor made inside them follows the model's device (the batches are built outside the check)."""
    from birnn.data import collate
    from birnn.data.streams import windows
    from birnn.tasks import BiLMConfig, BiLMTask, ClozeConfig, ClozeTask, LanguageModelTask, LMConfig
    from birnn.tasks.cloze import masked_examples

    lm = LanguageModelTask.for_text(LMConfig(hidden=6, embedding=4), TEXT)
    lm_batch = collate(windows(lm.vocab.encode(TEXT), 10)[:4])
    cloze = ClozeTask.for_tokens(ClozeConfig(hidden=6, embedding=4), list(TEXT))
    cloze_batch = collate(masked_examples(cloze.vocab.encode(list(TEXT)), cloze.mask_id, 10, 0.3, 1, 0)[:4])
    bilm = BiLMTask.for_text(BiLMConfig(hidden=6, embedding=4), TEXT.split(". "))
    bilm_batch = bilm.collate(bilm.text_examples([TEXT], 30)[:3])
    sentences = bilm.collate([bilm.encode_input(["the", "time"]), bilm.encode_input(["traveller"])])
    with DefaultDeviceFactories() as recorder:
        for task, batch in [(lm, lm_batch), (cloze, cloze_batch), (bilm, bilm_batch)]:
            task.model.train()
            task.loss(batch).backward()
            task.model.eval()
            with torch.no_grad():
                task.evaluate_batch(batch)
        lm.generate("time", 5), lm.generate("time", 5, temperature=1.0)
        with torch.no_grad():
            bilm.embed(sentences)
    assert recorder.calls == []


@pytest.mark.parametrize("command", [["lm", "--max-tokens", "200", "--heldout", "0"], ["cloze"],
                                     ["bilm", "--text", "timemachine"]])
def test_a_missing_cuda_is_one_line_before_a_language_model_writes_anything(tmp_path, capsys, monkeypatch,
                                                                              command):
    from birnn.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["train", *command, "--epochs", "1", "--quiet", "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch sees no CUDA device" in err and not out.exists()
