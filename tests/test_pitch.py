"""F0 tracking (YIN) against the truth of a synthetic sweep and against librosa.yin on real
speech, and the DTW-aligned F0 comparison that the TTS recipe reports."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from tests.speech import speech

from tympan.audio.metrics.pitch import f0_comparison
from tympan.audio.pitch import f0
from tympan.errors import AudioError, InvalidInputError

SR = 16000


def sweep(start: float, end: float, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A sine gliding linearly from ``start`` to ``end`` Hz, and its frequency per sample."""
    t = np.arange(int(SR * seconds)) / SR
    freq = start + (end - start) * t / seconds
    return np.sin(2 * np.pi * np.cumsum(freq) / SR).astype(np.float32), freq


@pytest.mark.parametrize("hz", [80.0, 150.0, 310.0])
def test_f0_of_a_steady_tone_is_within_half_a_percent(hz: float) -> None:
    wav = np.sin(2 * np.pi * hz * np.arange(SR // 2) / SR).astype(np.float32)
    track = f0(wav, SR)[5:-5]  # the edge frames see the zero padding
    assert np.all(np.isfinite(track))
    assert np.max(np.abs(track / hz - 1)) < 0.005


def test_f0_follows_a_sweep() -> None:
    wav, freq = sweep(100.0, 300.0)
    track = f0(wav, SR)[5:-5]
    # A frame's difference function reads half a frame (512 samples) before its centre.
    centres = np.arange(5, 5 + len(track)) * 160 - 256
    assert np.max(np.abs(track / freq[centres] - 1)) < 0.01


def test_f0_matches_librosa_yin_on_voiced_speech_and_marks_silence() -> None:
    wav, _ = speech("four one nine seven", sample_rate=SR, variant="m3", pitch=30, rate=185)
    wav = np.concatenate([np.zeros(SR // 4, np.float32), wav])
    track = f0(wav, SR)
    reference = librosa.yin(wav, fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=160)
    voiced = np.isfinite(track)
    assert 0.3 < voiced.mean() < 0.9
    assert not voiced[:20].any()  # the leading quarter second of silence
    assert np.median(np.abs(track[voiced] / reference[voiced] - 1)) < 0.01
    assert 70 < np.median(track[voiced]) < 130  # a low male voice


def test_f0_comparison_aligns_timing_and_scores_pitch() -> None:
    text = "four one nine seven"
    ref, _ = speech(text, sample_rate=SR, variant="m3", pitch=30, rate=185)
    slower, _ = speech(text, sample_rate=SR, variant="m3", pitch=30, rate=140)
    higher, _ = speech(text, sample_rate=SR, variant="m3", pitch=70, rate=185)
    same = f0_comparison(ref, slower, SR)  # the same voice and pitch, said more slowly
    assert same.voiced_frames > 30 and same.rmse_hz < 3 and same.correlation > 0.95
    pitched = f0_comparison(ref, higher, SR)  # the same contour, higher
    assert pitched.rmse_hz > 25 and pitched.correlation > 0.9
    silent = f0_comparison(ref, np.full(SR, 1e-4, np.float32), SR)
    assert np.isnan(silent.rmse_hz) and np.isnan(silent.correlation)
    assert silent.voicing_error > 0.3 and silent.voiced_frames == 0


def test_f0_refuses_what_it_cannot_track() -> None:
    with pytest.raises(AudioError, match="mono"):
        f0(np.zeros((2, 100)), SR)
    with pytest.raises(InvalidInputError, match="fmin"):
        f0(np.zeros(1000), SR, fmin=500, fmax=400)
    with pytest.raises(InvalidInputError, match="too short"):
        f0(np.zeros(1000), SR, fmin=60, frame_length=256)
