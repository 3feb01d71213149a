"""Voice activity detection on real speech (espeak-ng) with silence and white noise between."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from speech import speech
from tympan.audio.vad import Segment, speech_ratio, speech_segments, trim_silence
from tympan.errors import AudioError, InvalidInputError

METHODS = ["silero", "energy"]
TOLERANCE = 0.15  # seconds between a found boundary and the true one
PAD = 0.03  # speech_segments' default: the segments include it on both sides
NOISE = 0.003  # white noise standard deviation, about -50 dBFS


def _span(clip: np.ndarray, sr: int) -> tuple[float, float]:
    """Where the clip is louder than -40 dB below its peak: espeak leaves silence at the end."""
    loud = np.flatnonzero(np.abs(clip) > 0.01 * np.abs(clip).max())
    return loud[0] / sr, (loud[-1] + 1) / sr


@functools.lru_cache(maxsize=8)
def _scene(sr: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """silence 1 s + speech + silence 1.5 s + speech + silence 1 s, plus white noise; returns
    the waveform and the true speech spans in seconds."""
    first, _ = speech("the quick brown fox", sample_rate=sr)
    second, _ = speech("jumps over the lazy dog", sample_rate=sr)
    parts = [np.zeros(sr), first, np.zeros(int(1.5 * sr)), second, np.zeros(sr)]
    offsets = np.cumsum([0] + [len(p) for p in parts]) / sr
    truth = [(offsets[1] + a, offsets[1] + b) for a, b in [_span(first, sr)]]
    truth += [(offsets[3] + a, offsets[3] + b) for a, b in [_span(second, sr)]]
    wav = np.concatenate(parts).astype(np.float32)
    wav += (NOISE * np.random.default_rng(sr).standard_normal(len(wav))).astype(np.float32)
    wav.flags.writeable = False
    return wav, truth


def _assert_matches(segments: list[Segment], truth: list[tuple[float, float]]) -> None:
    assert len(segments) == len(truth), segments
    for seg, (start, end) in zip(segments, truth, strict=True):
        assert abs(seg.start - (start - PAD)) < TOLERANCE, (seg, start)
        assert abs(seg.end - (end + PAD)) < TOLERANCE, (seg, end)


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100])
@pytest.mark.parametrize("method", METHODS)
def test_finds_both_utterances_in_original_seconds(method: str, sr: int) -> None:
    wav, truth = _scene(sr)
    segments = speech_segments(wav, sr, method=method)
    _assert_matches(segments, truth)
    assert all(isinstance(s, Segment) and s.duration > 0 for s in segments)


def test_auto_uses_silero_when_installed() -> None:
    wav, _ = _scene(16000)
    assert speech_segments(wav, 16000) == speech_segments(wav, 16000, method="silero")


@pytest.mark.parametrize("method", METHODS)
def test_noise_and_silence_hold_no_speech(method: str) -> None:
    noise = 0.05 * np.random.default_rng(1).standard_normal(3 * 16000)
    assert speech_segments(noise, 16000, method=method) == []
    assert speech_segments(np.zeros(16000), 16000, method=method) == []


@pytest.mark.parametrize("method", METHODS)
def test_trim_silence_keeps_the_speech_only(method: str) -> None:
    wav, truth = _scene(16000)
    trimmed = trim_silence(wav, 16000, method=method)
    expected = (truth[-1][1] + PAD) - (truth[0][0] - PAD)
    assert abs(trimmed.shape[0] / 16000 - expected) < 2 * TOLERANCE
    assert trimmed.dtype == wav.dtype
    # The part cut from the front is the leading silence: nothing in it above the noise.
    cut = round(speech_segments(wav, 16000, method=method)[0].start * 16000)
    assert np.abs(wav[:cut]).max() < 8 * NOISE
    np.testing.assert_array_equal(trimmed[:100], wav[cut:cut + 100])


def test_trim_silence_of_noise_is_empty_and_keeps_channels() -> None:
    noise = 0.05 * np.random.default_rng(2).standard_normal((2, 16000))
    assert trim_silence(noise, 16000).shape == (2, 0)


def test_speech_ratio() -> None:
    wav, truth = _scene(16000)
    spoken = sum(b - a for a, b in truth) / (len(wav) / 16000)
    assert abs(speech_ratio(wav, 16000) - spoken) < 0.1


@pytest.mark.parametrize("method", METHODS)
def test_stereo_torch_and_int16_give_the_same_segments(method: str) -> None:
    wav, truth = _scene(16000)
    mono = speech_segments(wav, 16000, method=method)
    stereo = np.stack([wav, 0.5 * wav])
    _assert_matches(speech_segments(stereo, 16000, method=method), truth)
    assert speech_segments(torch.from_numpy(wav.copy()), 16000, method=method) == mono
    pcm = np.round(wav * 32767).astype(np.int16)
    _assert_matches(speech_segments(pcm, 16000, method=method), truth)
    assert trim_silence(stereo, 16000, method=method).shape[0] == 2


def test_min_speech_drops_short_bursts() -> None:
    sr = 16000
    t = np.arange(int(0.1 * sr)) / sr
    burst = 0.3 * np.sin(2 * np.pi * 220 * t)
    wav = np.concatenate([np.zeros(sr), burst, np.zeros(sr)])
    wav += NOISE * np.random.default_rng(3).standard_normal(len(wav))
    assert speech_segments(wav, sr, method="energy") == []
    (seg,) = speech_segments(wav, sr, method="energy", min_speech=0.05, pad=0.0)
    assert abs(seg.start - 1.0) < 0.03 and abs(seg.end - 1.1) < 0.03


def test_silero_is_safe_from_many_threads() -> None:
    wav, _ = _scene(16000)
    expected = speech_segments(wav, 16000, method="silero")
    results: list[list[Segment]] = []
    threads = [threading.Thread(target=lambda: results.append(
        speech_segments(wav, 16000, method="silero"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4


def test_import_is_light_and_silero_keeps_torch_threads() -> None:
    # A fresh interpreter: importing silero_vad sets torch's thread count to 1 process-wide.
    code = (
        "import sys, numpy as np\n"
        "import tympan.audio.vad as vad\n"
        "assert 'torch' not in sys.modules, 'importing tympan.audio.vad imported torch'\n"
        "import torch\n"
        "torch.set_num_threads(3)\n"
        "vad.speech_segments(np.zeros(8000), 16000, method='silero')\n"
        "assert torch.get_num_threads() == 3, torch.get_num_threads()\n"
    )
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("wav", "sr", "message"), [
    (np.zeros((1, 2, 16000)), 16000, r"\(frames,\) or \(channels, frames\)"),
    (np.zeros((16000, 2)), 16000, "transpose"),
    (np.zeros(16000, dtype=np.complex64), 16000, "dtype complex64"),
    (np.zeros(16000, dtype=bool), 16000, "dtype bool"),
    (np.array([0.0, np.nan] * 8000), 16000, "NaN or infinite"),
    (np.zeros(0), 16000, "empty"),
    (np.zeros((2, 0)), 16000, "empty"),
    (np.zeros(16000), 0, "sample rate"),
    (np.zeros(16000), 16000.0, "sample rate"),
    (np.zeros(16000), True, "sample rate"),
    (np.zeros(16000), 1000, "sample rate"),
])
def test_bad_audio_is_an_audio_error(wav: np.ndarray, sr: object, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        speech_segments(wav, sr)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "message"), [
    ({"method": "webrtc"}, "method must be one of silero, energy, auto"),
    ({"threshold": 1.5}, "threshold must be between 0 and 1"),
    ({"threshold": 0.0}, "threshold must be between 0 and 1"),
    ({"pad": -0.1}, "pad must be a non-negative"),
    ({"min_speech": float("nan")}, "min_speech must be a non-negative"),
])
def test_bad_parameters_are_invalid_input(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        speech_segments(np.zeros(16000), 16000, **kw)  # type: ignore[arg-type]
