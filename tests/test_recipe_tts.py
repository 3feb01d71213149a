"""The TTS recipe: its pieces on real espeak speech, a short real training run wired end to
end (ASR judge, clips, alignment plots, metrics, checkpoint), and the probe's alignment rule
firing on a real failing attention and staying quiet on a healthy one."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from recipes.tts.data import Vocabulary, durations_of, phonemes
from recipes.tts.train import Config, ConfigError, load_config, train
from recipes.tts.vocoder import GriffinLim, MelScale
from tests.registry_fixtures import asr_run

import tympan
from tympan.audio.corpus import synth_corpus
from tympan.audio.metrics import f0_comparison, mcd_from_audio
from tympan.audio.synth import synthesize

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

# The smallest corpus the recipe learns from: one training speaker saying 24 digit strings.
SMALL = {"voices": 3, "per_speaker": 24, "held_out": 3}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tts") / "corpus"
    synth_corpus(root, voices=SMALL["voices"], utterances_per_speaker=SMALL["per_speaker"],
                 progress=False)
    return root


def _config(store: Path, corpus: Path, **overrides: object) -> Config:
    return Config(**{**SMALL, "corpus_dir": str(corpus), "store": str(store), "judge": None,
                     "n_boot": 50, **overrides})


def test_griffin_lim_resynthesizes_espeak_speech_with_its_pitch() -> None:
    speech = synthesize("four one nine zero seven", "en", variant="m3", sample_rate=16000)
    scale = MelScale(16000, n_fft=512, hop=128, n_mels=80)
    log_mel = scale.log_mel(speech.waveform)
    scale.mean, scale.std = float(log_mel.mean()), float(log_mel.std())
    wave = GriffinLim(scale)(scale.normalize(log_mel))
    assert wave.dtype == np.float32 and abs(len(wave) - len(speech.waveform)) < 512
    assert np.array_equal(wave, GriffinLim(scale)(scale.normalize(log_mel)))  # repeatable
    assert mcd_from_audio(speech.waveform, wave, 16000) < 5.0  # dB: Griffin-Lim's own loss
    pitch = f0_comparison(speech.waveform, wave, 16000)
    assert pitch.correlation > 0.95 and pitch.rmse_hz < 5.0


def test_phoneme_durations_come_from_espeak_timings(corpus: Path) -> None:
    utterance = synth_corpus(corpus, voices=3, utterances_per_speaker=24,
                             progress=False).split("train")[0]
    marks = phonemes(utterance)
    assert marks and all(a[1] <= b[1] for a, b in itertools.pairwise(marks))
    frames = 1 + round(utterance.duration * 16000) // 128
    durations = durations_of(utterance, frames, 16000, 128)
    assert len(durations) == len(marks) and sum(durations) == frames
    assert min(durations) >= 0 and max(durations) < frames / 2
    vocab = Vocabulary.build("phonemes", [utterance])
    assert vocab.encode([p for p, _ in marks]).min() >= 1  # 0 pads
    with pytest.raises(ConfigError, match="not in the model's vocabulary"):
        vocab.encode(["#"])


def test_short_run_learns_and_records_every_piece(tmp_path: Path, corpus: Path) -> None:
    store = tmp_path / "store"
    judge = asr_run(str(store), corpus)  # an (untrained) ASR judge: wiring, not accuracy
    cfg = _config(store, corpus, judge=judge.id, epochs=4, batch_size=7, eval_every=2,
                  audio_samples=2, width=64, griffin_lim_iters=4)
    run_id = train(cfg)
    record = tympan.load_run(run_id, store=str(store))
    assert record.status == "finished" and record.config["judge_run"] == judge.id
    loss = record.history("train/mel").values
    assert len(loss) == 4 * 3  # 21 training texts, batches of 7
    assert np.mean(loss[-3:]) < 0.8 * np.mean(loss[:3])
    for key in ("test/mcd", "test/f0_rmse", "test/f0_corr", "test/cer", "test/cer_low",
                "test/cer_high", "test/diagonality", "test/focus", "test/entropy",
                "test/align_fail", "valid/loss", "valid/diagonality", "judge/cer_original",
                "judge/cer_vocoded", "train/stop", "train/guided"):
        assert key in record.summary, key
    assert len(record.history("test/mcd").values) == 2  # epochs 2 and 4
    assert record.summary["test/mcd"].last > 0
    clips = [c for c in record.audio_samples() if c.step == record.history("test/mcd").steps[-1]]
    assert len(clips) == 2
    digits = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    assert all(" · ASR heard: " in c.caption and set(c.caption.split(" · ")[0].split()) <= digits
               for c in clips)
    keys = {i.key for i in record.images()}
    assert {"valid/alignment", "test/alignment"} <= keys
    assert len([i for i in record.images() if i.key == "valid/alignment"]) == 4  # per epoch
    checkpoint = torch.load(io.BytesIO(record.read_artifact("model.pt")))
    assert checkpoint["config"]["decoder"] == "location" and checkpoint["run_id"] == run_id
    per_utterance = json.loads(record.read_artifact("test/utterances.json"))
    assert len(per_utterance["ids"]) == len(per_utterance["cer"]["errors"]) == 3
    reference = json.loads(record.read_artifact("judge.json"))
    assert reference["judge_run"] == judge.id and reference["cer_original"] >= 0


def test_duration_decoder_learns_from_phoneme_timings(tmp_path: Path, corpus: Path) -> None:
    cfg = _config(tmp_path / "store", corpus, decoder="duration", encoder="transformer",
                  epochs=2, batch_size=7, width=64, griffin_lim_iters=2, audio_samples=1)
    record = tympan.load_run(train(cfg), store=str(tmp_path / "store"))
    assert "train/duration" in record.summary and "train/stop" not in record.summary
    # Hard alignments from durations are monotonic: most of their mass near the diagonal.
    assert record.summary["test/diagonality"].last > 0.3


def test_characters_instead_of_phonemes(tmp_path: Path, corpus: Path) -> None:
    cfg = _config(tmp_path / "store", corpus, text="chars", epochs=1, batch_size=7, width=32,
                  griffin_lim_iters=1, audio_samples=1)
    record = tympan.load_run(train(cfg), store=str(tmp_path / "store"))
    checkpoint = torch.load(io.BytesIO(record.read_artifact("model.pt")))
    assert checkpoint["symbols"][1:4] == [" ", "a", "b"]
    assert "chars" in record.tags and "test/mcd" in record.summary


# Both runs: 20 epochs of 3 steps, the rule judging from step 45 (the recipe's default
# threshold, diagonality 0.4); the healthy one is the recipe's default decoder and loss.
HEALTH = {"epochs": 20, "batch_size": 7, "width": 64, "align_warmup": 45, "eval_every": 100,
          "griffin_lim_iters": 2, "audio_samples": 1}


def _alignment_events(record: tympan.RunRecord) -> list[dict]:
    events = json.loads(record.read_artifact("probe/events.json"))
    return [e for e in events if e["rule"] == "attention_alignment"]


def test_alignment_rule_fires_on_a_failing_attention_with_its_plot(tmp_path: Path,
                                                                   corpus: Path) -> None:
    """Content-only attention without the guided loss never finds the diagonal: the rule
    fires as soon as its warmup is over, and the run holds the attention plot of that step."""
    store = tmp_path / "store"
    cfg = _config(store, corpus, decoder="content", guided_attention=0.0, **HEALTH)
    record = tympan.load_run(train(cfg), store=str(store))
    events = _alignment_events(record)
    assert events and events[0]["layer"] == "decoder"
    assert HEALTH["align_warmup"] <= events[0]["step"] < HEALTH["align_warmup"] + 10 + 1
    assert "near uniform" in events[0]["message"] or "off the diagonal" in events[0]["message"]
    plots = [i for i in record.images() if i.key == "health/attention"]
    assert plots[0].step == events[0]["step"] and plots[0].caption == events[0]["message"]
    assert record.history("health/attention_alignment").steps[0] == events[0]["step"]
    assert record.summary["test/align_fail"].last == 1.0


def test_alignment_rule_stays_quiet_on_a_healthy_attention(tmp_path: Path,
                                                          corpus: Path) -> None:
    store = tmp_path / "store"
    record = tympan.load_run(train(_config(store, corpus, **HEALTH)), store=str(store))
    assert _alignment_events(record) == []
    assert "health/attention" not in {i.key for i in record.images()}
    assert record.summary["valid/diagonality"].last > 0.4


@pytest.mark.parametrize(("override", "message"), [
    ("decoder=duration text=chars", "decoder=duration learns durations"),
    ("decoder=rnn", "decoder='rnn' is not one of location | content | duration"),
    ("reduction=0", "reduction must be 1 or more"),
])
def test_bad_config_is_a_clear_error(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        load_config(overrides=override.split())


def test_unknown_judge_says_how_to_get_one(tmp_path: Path, corpus: Path) -> None:
    cfg = _config(tmp_path / "store", corpus, judge="models:/no-such-asr@champion")
    with pytest.raises(ConfigError, match="Train an ASR judge first"):
        train(cfg)


def test_base_config_holds_the_defaults() -> None:
    assert load_config() == Config()
