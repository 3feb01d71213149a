"""The CTC ASR recipe: a tiny run through the real entry point, and its config overrides."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recipes.asr_ctc.train import Config, ConfigError, load_config, main

import tympan

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_is_recorded(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # The smallest corpus (one speaker per split) and model; checks wiring, not accuracy.
    overrides = [f"store={store}", f"corpus_dir={tmp_path / 'corpus'}", "voices=3",
                 "per_speaker=3", "epochs=1", "hidden=32", "layers=1", "batch_size=4",
                 "warmup_steps=1", "n_boot=50", "encoder=gru"]
    done = subprocess.run([sys.executable, "-m", "recipes.asr_ctc.train", *overrides],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (record,) = tympan.find_runs(store=str(store), project="asr-ctc")
    run_id = record.id
    assert record.config["encoder"] == "gru"
    assert record.config["corpus_dir"] == str(tmp_path / "corpus")  # resolved, not null
    assert len(record.history("train/loss").values) == 1  # 3 utterances, batches of 4
    assert len(record.history("lr").values) == 1
    for key in ("valid/wer", "valid/wer_low", "valid/wer_high", "test/cer"):
        assert key in record.summary
    low, wer, high = (record.summary[f"valid/wer{s}"].last for s in ("_low", "", "_high"))
    assert low <= wer <= high
    samples = record.audio_samples()
    assert samples and all(s.caption.startswith("ref: ") and " | hyp: " in s.caption
                           for s in samples)
    assert [a.path for a in record.artifacts()].count("model.pt") == 1
    checkpoint = torch.load(io.BytesIO(record.read_artifact("model.pt")))
    assert checkpoint["run_id"] == run_id
    per_utterance = json.loads(record.read_artifact("test/utterances.json"))
    assert len(per_utterance["ids"]) == len(per_utterance["wer"]["errors"]) > 0
    wer = sum(per_utterance["wer"]["errors"]) / sum(per_utterance["wer"]["counts"])
    assert wer == pytest.approx(record.summary["test/wer"].last)
    assert checkpoint["config"] == record.config
    assert "out.weight" in checkpoint["model"]


def test_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(overrides=["encoder=transformer", "lr=1e-3", "spec_augment=false",
                                 "store=null", "epochs=7"])
    assert (cfg.encoder, cfg.lr, cfg.spec_augment, cfg.store, cfg.epochs) == (
        "transformer", 1e-3, False, None, 7)
    assert load_config() == Config()  # configs/base.yaml holds exactly the defaults


@pytest.mark.parametrize(("override", "message"), [
    ("encodr=gru", "unknown config key 'encodr'"),
    ("epochs=two", "epochs='two' is not an integer"),
    ("encoder=lstm", "encoder='lstm' is not one of conv | gru | transformer"),
    ("spec_augment=maybe", "spec_augment='maybe' is not true or false"),
    ("epochs", "override 'epochs' is not key=value"),
    ("epochs=0", "epochs must be 1 or more"),
])
def test_bad_override_is_a_clear_error(override: str, message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        load_config(overrides=[override])
    with pytest.raises(SystemExit) as exit_info:
        main([override])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
