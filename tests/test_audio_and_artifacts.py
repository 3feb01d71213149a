"""Audio samples (FLAC) and artifacts (content-addressed files) round-trip exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

import tympan
from tympan.errors import AudioError, InvalidInputError


def _tone(seconds: float = 0.5, rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _decode(record, sample) -> tuple[np.ndarray, int]:
    data = record.store.blobs.read(sample.sha256)
    return soundfile.read(io.BytesIO(data), always_2d=True)


def test_audio_round_trips_in_every_layout(store_url: str) -> None:
    torch = pytest.importorskip("torch")
    mono = _tone()
    stereo_ct = np.stack([mono, -mono])  # (channels, frames), torch's layout
    run = tympan.init(project="tts", store=store_url)
    run.log_audio("mono", mono, 16000, step=1, caption="ref: hello | hyp: hello")
    run.log_audio("stereo", torch.from_numpy(stereo_ct), 22050, step=2)
    run.log_audio("frames_first", stereo_ct.T.copy(), 8000, step=3)
    run.log_audio("pcm16", (mono * 32767).astype(np.int16), 16000, step=4)
    run.log_audio("loud", mono * 4.0, 16000, step=5)
    run.finish()

    record = tympan.load_run(run.id, store=store_url)
    samples = {s.key: s for s in record.audio_samples()}
    assert set(samples) == {"mono", "stereo", "frames_first", "pcm16", "loud"}
    m = samples["mono"]
    assert (m.step, m.sample_rate, m.channels, m.frames, m.caption) == (
        1, 16000, 1, 8000, "ref: hello | hyp: hello")
    assert m.duration == pytest.approx(0.5) and m.path.endswith(".flac")
    data, rate = _decode(record, m)
    assert rate == 16000 and np.max(np.abs(data[:, 0] - mono)) < 1e-4  # 24-bit FLAC
    data, rate = _decode(record, samples["stereo"])
    assert rate == 22050 and data.shape == (8000, 2)
    np.testing.assert_allclose(data.T, stereo_ct, atol=1e-4)
    assert samples["frames_first"].channels == 2
    loud = samples["loud"]
    assert loud.gain == pytest.approx(2.0, rel=1e-3) and loud.peak == pytest.approx(2.0, rel=1e-3)
    data, _ = _decode(record, loud)
    np.testing.assert_allclose(data[:, 0] * loud.gain, mono * 4.0, atol=1e-3)  # not clipped
    assert {a.path for a in record.artifacts()} >= {m.path, loud.path}

    # The public reader undoes the gain and gives the clip back as logged.
    clip, rate, caption = record.read_audio("loud")
    assert rate == 16000 and caption is None
    np.testing.assert_allclose(clip, mono * 4.0, atol=1e-3)
    clip, rate, caption = record.read_audio("mono", step=1)
    assert caption == "ref: hello | hyp: hello" and clip.shape == (8000,)
    assert record.read_audio("stereo")[0].shape == (8000, 2)
    with pytest.raises(InvalidInputError, match="no audio 'mono' at step 7"):
        record.read_audio("mono", step=7)
    with pytest.raises(InvalidInputError, match="no audio 'nope'.*frames_first"):
        record.read_audio("nope")


@pytest.mark.parametrize(
    ("waveform", "rate", "message"),
    [
        (np.zeros((2, 3, 100), np.float32), 16000, "log a batch one item at a time"),
        (np.zeros((100, 100), np.float32), 16000, "at most 8 channels"),
        (np.zeros(0, np.float32), 16000, "empty"),
        (np.array([0.0, np.nan, 0.1]), 16000, "NaN or Inf samples \\(first at frame 1\\)"),
        (np.array([0.0, np.inf]), 16000, "NaN or Inf"),
        (np.zeros(10, np.complex64), 16000, "dtype complex64"),
        (np.array(["a", "b"]), 16000, "dtype <U1"),
        (np.zeros(10, np.float32), 0, "sample_rate"),
        (np.zeros(10, np.float32), 44100.5, "whole number"),
        (np.zeros(10, np.float32), "16k", "must be an int"),
        ("not audio", 16000, "dtype <U9"),
    ],
)
def test_bad_audio_is_rejected_with_a_clear_value_error(tmp_path, waveform, rate, message) -> None:
    run = tympan.init(project="p", store=str(tmp_path / "s"))
    with pytest.raises(ValueError, match=message) as info:
        run.log_audio("utt", waveform, rate)
    assert isinstance(info.value, AudioError) and "'utt'" in str(info.value)
    run.finish()


def test_artifacts_are_copied_content_addressed_and_deduplicated(store_url: str, tmp_path) -> None:
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"weights-v1")
    folder = tmp_path / "exported"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "sub" / "vocab.txt").write_text("a b c")
    run = tympan.init(project="p", store=store_url)
    run.log_artifact(ckpt)
    ckpt.write_bytes(b"weights-v2")  # the training loop overwrites its checkpoint
    run.log_artifact(ckpt, name="checkpoints/epoch2.pt")
    run.log_artifact(b"weights-v1", name="copy_of_v1.pt")
    run.log_artifact(folder)
    run.finish()

    record = tympan.load_run(run.id, store=store_url)
    arts = {a.path: a for a in record.artifacts()}
    assert set(arts) == {"last.pt", "checkpoints/epoch2.pt", "copy_of_v1.pt",
                         "exported/model.onnx", "exported/sub/vocab.txt"}
    assert record.read_artifact("last.pt") == b"weights-v1"
    assert record.read_artifact("checkpoints/epoch2.pt") == b"weights-v2"
    with pytest.raises(InvalidInputError, match="no artifact 'missing.pt'.*last.pt"):
        record.read_artifact("missing.pt")
    assert arts["copy_of_v1.pt"].sha256 == arts["last.pt"].sha256  # stored once
    assert arts["exported/sub/vocab.txt"].media_type == "text/plain"
    assert arts["last.pt"].size == 10


def test_bad_artifacts_are_rejected(tmp_path) -> None:
    run = tympan.init(project="p", store=str(tmp_path / "s"))
    with pytest.raises(InvalidInputError, match="does not exist"):
        run.log_artifact(tmp_path / "missing.bin")
    with pytest.raises(InvalidInputError, match="needs name="):
        run.log_artifact(b"data")
    for name in ("../escape.txt", "a/../../b", "/", "..\\x"):
        with pytest.raises(InvalidInputError, match="artifact name"):
            run.log_artifact(b"data", name=name)
    run.finish()
