"""The speaker-id recipe: a tiny run through the real entry point, its checkpoint, its overrides."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recipes.speaker_id.train import (
    Config,
    ConfigError,
    XVector,
    evaluate,
    load_config,
    load_data,
    main,
    split_heldout,
)
from tests.serving_fixtures import assert_batch_features_match

import tympan

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_is_recorded_and_its_checkpoint_reproduces_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # 9 voices: 5 training speakers (chance is 20%) with 9 utterances each to train on and 3
    # held out; 2 unseen speakers in valid and 2 in test.
    overrides = [f"store={store}", f"corpus_dir={tmp_path / 'corpus'}", "voices=9",
                 "per_speaker=12", "epochs=10", "channels=64", "embedding=32", "batch_size=8",
                 "warmup_steps=2", "lr=0.005", "pooling=stats"]
    done = subprocess.run([sys.executable, "-m", "recipes.speaker_id.train", *overrides],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (record,) = tympan.find_runs(store=str(store), project="speaker-id")
    assert record.status == "finished"
    assert record.config["voices"] == 9 and record.config["pooling"] == "stats"
    assert record.config["corpus_dir"] == str(tmp_path / "corpus")  # resolved, not null
    assert len(record.history("train/loss").values) == 10 * 6  # 45 utterances, batches of 8
    assert len(record.history("lr").values) == 10 * 6
    assert len(record.history("heldout/accuracy").values) == 10  # once per epoch
    for key in ("heldout/eer", "valid/eer", "valid/min_dcf", "test/eer", "test/min_dcf"):
        assert 0.0 <= record.summary[key].last <= 1.0, key
    accuracy = record.summary["heldout/accuracy"].last
    assert accuracy >= 0.6, f"held-out accuracy {accuracy} is not clearly above chance (0.2)"
    samples = record.audio_samples()
    assert samples and all(s.caption.startswith("speaker: spk") and " | predicted: spk" in
                           s.caption for s in samples)

    checkpoint = torch.load(io.BytesIO(record.read_artifact("model.pt")))
    assert checkpoint["run_id"] == record.id
    assert checkpoint["config"] == record.config
    # Rebuild the model from the checkpoint alone and score the held-out utterances again.
    cfg = Config(**checkpoint["config"])
    speakers, data = load_data(cfg)
    assert checkpoint["speakers"] == speakers and len(speakers) == 5
    model = XVector(cfg, dims=data["train"].feats[0].shape[1], n_speakers=len(speakers))
    model.load_state_dict(checkpoint["model"])
    scores, _ = evaluate(cfg, model, data["heldout"], "heldout")
    assert scores["heldout/accuracy"] == pytest.approx(accuracy)
    assert scores["heldout/eer"] == pytest.approx(record.summary["heldout/eer"].last, abs=0.02)


def test_heldout_utterances_are_per_speaker_and_follow_the_seed(tmp_path: Path) -> None:
    from tympan.audio.corpus import synth_corpus

    corpus = synth_corpus(tmp_path / "corpus", voices=6, utterances_per_speaker=8,
                          progress=False)
    utts = corpus.split("train")
    trained, held = split_heldout(Config(seed=0), utts)
    assert {u.path for u in trained}.isdisjoint(u.path for u in held)
    assert len(trained) + len(held) == len(utts)
    for speaker in {u.speaker for u in utts}:
        assert sum(u.speaker == speaker for u in held) == 2  # a quarter of 8
    assert split_heldout(Config(seed=0), utts[::-1])[1] == held[::-1]  # order-independent
    assert split_heldout(Config(seed=1), utts)[1] != held


def test_overrides_are_typed() -> None:
    cfg = load_config(overrides=["pooling=mean", "embedding=64", "loss=am_softmax",
                                 "heldout=0.5", "store=null"])
    assert (cfg.pooling, cfg.embedding, cfg.loss, cfg.heldout, cfg.store) == (
        "mean", 64, "am_softmax", 0.5, None)
    assert load_config() == Config()  # configs/base.yaml holds exactly the defaults


@pytest.mark.parametrize(("override", "message"), [
    ("poolin=mean", "unknown config key 'poolin'"),
    ("pooling=max", "pooling='max' is not one of stats | mean"),
    ("embedding=big", "embedding='big' is not an integer"),
    ("embedding=0", "embedding must be 1 or more"),
    ("heldout=1", "heldout=1.0: the held-out fraction must be between 0 and 1"),
    ("per_speaker=1", "per_speaker=1 with heldout=0.25 holds out no utterance"),
])
def test_bad_override_is_a_clear_error(override: str, message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        load_config(overrides=[override])
    with pytest.raises(SystemExit) as exit_info:
        main([override])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("front_end", "norm"), [("logmel", "mean"), ("mfcc", "meanvar"),
                                                 ("logmel", "none")])
@pytest.mark.parametrize("lengths", [(16000, 28800, 161, 12345), (20000,)])
def test_a_batchs_features_in_one_pass_equal_each_clips_alone(
        front_end: str, norm: str, lengths: tuple[int, ...]) -> None:
    from recipes.speaker_id.train import batch_features, features

    assert_batch_features_match(batch_features, features,
                                Config(front_end=front_end, norm=norm), lengths)
