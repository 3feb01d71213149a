"""Hugging Face Trainer: a tiny real wav2vec2 audio classifier trains through
``TympanCallback`` (and through ``report_to="tympan"`` after ``register()``); its logs,
evaluations, arguments, model config and checkpoints are read back from the store."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import transformers  # noqa: E402

import tympan  # noqa: E402
from tympan.integrations.transformers import TympanCallback, metric_key, register  # noqa: E402


class Clips(torch.utils.data.Dataset):
    """Tones of two pitches: a keyword spotter's smallest job."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 2, (n,), generator=generator)
        t = torch.arange(1600) / 16000
        self.clips = [torch.sin(2 * torch.pi * (300.0 if y else 1200.0) * t)
                      + 0.05 * torch.randn(1600, generator=generator) for y in self.labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_values": self.clips[i], "labels": self.labels[i]}


@pytest.fixture(scope="module")
def make_model():
    config = transformers.Wav2Vec2Config(
        vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2),
        num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2, num_labels=2,
        do_stable_layer_norm=False, feat_extract_norm="group")

    def make():
        torch.manual_seed(0)
        return transformers.Wav2Vec2ForSequenceClassification(config)

    return make


def _args(tmp_path, **kwargs) -> transformers.TrainingArguments:
    options = {"per_device_train_batch_size": 8, "num_train_epochs": 2, "learning_rate": 1e-3,
               "logging_steps": 2, "eval_strategy": "epoch", "save_strategy": "epoch",
               "report_to": "none", "use_cpu": True, "disable_tqdm": True, "seed": 0, **kwargs}
    return transformers.TrainingArguments(output_dir=str(tmp_path / "out"), **options)


def test_a_trainer_run_is_recorded(tmp_path, make_model) -> None:
    store = str(tmp_path / "store")
    callback = TympanCallback(project="kws", config={"data": "tones"}, store=store)
    trainer = transformers.Trainer(model=make_model(), args=_args(tmp_path, run_name="tiny"),
                                   train_dataset=Clips(32, 0), eval_dataset=Clips(8, 1),
                                   callbacks=[callback])
    trainer.train()
    run_id = callback.run.id
    assert callback.run.status == "finished"
    trainer.evaluate(metric_key_prefix="test")  # after train: resumes the run

    record = tympan.load_run(run_id, store=store)
    assert (record.project, record.name, record.status) == ("kws", "tiny", "finished")
    assert record.config["data"] == "tones"
    assert record.config["trainer"]["learning_rate"] == 1e-3
    assert record.config["model"]["hidden_size"] == 16
    loss = record.history("train/loss")
    assert loss.steps.tolist() == [2, 4, 6, 8]  # logging_steps=2 of 8 optimizer steps
    assert {"train/learning_rate", "train/grad_norm", "train/epoch"} <= set(record.summary)
    evals = record.history("eval/loss")
    assert evals.steps.tolist() == [4, 8]  # once per epoch, stored once
    assert record.summary["test/loss"].count == 1 and record.summary["test/loss"].last_step == 8
    files = {a.path for a in record.artifacts()}
    assert {"checkpoints/checkpoint-4/model.safetensors",
            "checkpoints/checkpoint-8/model.safetensors"} <= files


def test_report_to_tympan_after_register(tmp_path, make_model, monkeypatch) -> None:
    from transformers.integrations import integration_utils

    monkeypatch.delitem(integration_utils.INTEGRATION_TO_CALLBACK, "tympan", raising=False)
    with pytest.raises(ValueError, match="tympan is not supported"):  # not until asked
        transformers.Trainer(model=make_model(), args=_args(tmp_path, report_to="tympan",
                                                            eval_strategy="no"),
                             train_dataset=Clips(8, 0))
    store = str(tmp_path / "store")
    monkeypatch.setenv("TYMPAN_STORE", store)
    monkeypatch.setenv("TYMPAN_PROJECT", "kws")
    register()  # (monkeypatch takes the entry out again after the test)
    assert integration_utils.INTEGRATION_TO_CALLBACK["tympan"] is TympanCallback
    trainer = transformers.Trainer(
        model=make_model(), args=_args(tmp_path, report_to="tympan", num_train_epochs=1,
                                       eval_strategy="no", save_strategy="no"),
        train_dataset=Clips(16, 0))
    trainer.train()
    (run,) = tympan.find_runs(store=store, project="kws")
    assert run.summary["train/loss"].count == 1 and run.status == "finished"
    assert not [a for a in run.artifacts() if a.path.startswith("checkpoints/")]


def test_keys_are_named_like_the_trainers_own_callbacks() -> None:
    assert metric_key("eval_loss") == "eval/loss"
    assert metric_key("test_wer") == "test/wer"
    assert metric_key("loss") == "train/loss"
    assert metric_key("custom/metric") == "custom/metric"
