"""tympan.audio.io on real files: round trips, resampling quality, conditioning, and every
kind of broken file ending in an AudioError that names it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speech import speech
from tympan.audio import io
from tympan.errors import AudioError


def _tone(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _spectrum(wav: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude spectrum (a full-scale sine reads its amplitude) and its frequencies."""
    win = np.hanning(len(wav))
    return np.abs(np.fft.rfft(wav * win)) * 2 / win.sum(), np.fft.rfftfreq(len(wav), 1 / sr)


def test_importing_tympan_audio_loads_no_torch_store_or_track() -> None:
    code = ("import sys, tympan; before = set(sys.modules); import tympan.audio, tympan.audio.io; "
            "new = set(sys.modules) - before; "
            "bad = [m for m in new if m.startswith(('torch', 'tympan.store', 'tympan.track'))]; "
            "assert not bad and 'torch' not in sys.modules, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("suffix", "atol"), [(".wav", 1e-4), (".flac", 1e-4), (".ogg", 0.05)])
def test_round_trip(tmp_path: Path, suffix: str, atol: float) -> None:
    wav, sr = speech("round trip", sample_rate=16000)
    stereo = np.stack([wav, 0.5 * wav])
    path = tmp_path / f"clip{suffix}"
    io.save(path, stereo, sr)
    back, back_sr = io.load(path)
    assert back_sr == sr and back.shape == stereo.shape and back.dtype == np.float32
    if suffix == ".ogg":  # lossy: compare spectra level, not samples
        assert abs(np.std(back[0]) - np.std(wav)) < 0.05 * np.std(wav)
    else:
        np.testing.assert_allclose(back, stereo, atol=atol)
    mono, _ = io.load(path, mono=True, dtype="float64")
    assert mono.shape == wav.shape and mono.dtype == np.float64


def test_lossless_float_subtype_and_int_dtype(tmp_path: Path) -> None:
    wav, sr = speech("exact", sample_rate=16000)
    io.save(tmp_path / "f.wav", wav, sr, subtype="FLOAT")
    back, _ = io.load(tmp_path / "f.wav")
    assert back.shape == wav.shape and np.array_equal(back, wav)
    pcm, _ = io.load(tmp_path / "f.wav", dtype="int16")
    assert pcm.dtype == np.int16


def test_save_clips_instead_of_wrapping(tmp_path: Path) -> None:
    io.save(tmp_path / "loud.wav", np.array([0.0, 1.5, -1.5, 0.5], dtype=np.float32), 8000)
    back, _ = io.load(tmp_path / "loud.wav")
    assert back[1] > 0.99 and back[2] < -0.99


def test_load_resamples(tmp_path: Path) -> None:
    io.save(tmp_path / "a.wav", _tone(1000, 44100), 44100)
    wav, sr = io.load(tmp_path / "a.wav", sample_rate=16000)
    assert sr == 16000 and wav.shape == (16000,)


def test_resample_keeps_frequency_and_amplitude() -> None:
    out = io.resample(_tone(1000, 44100, amp=0.5), 44100, 16000)
    assert out.dtype == np.float32 and out.shape == (16000,)
    mag, freqs = _spectrum(out[1000:-1000], 16000)  # skip the filter's edge transients
    assert abs(freqs[np.argmax(mag)] - 1000) < 2
    assert mag.max() == pytest.approx(0.5, rel=0.01)


def test_resample_does_not_alias_above_nyquist() -> None:
    # 44.1k -> 16k: 7 kHz stays in band at full level; 10 kHz would fold to 6 kHz.
    x = _tone(7000, 44100, amp=0.4) + _tone(10000, 44100, amp=0.4)
    mag, freqs = _spectrum(io.resample(x, 44100, 16000)[1000:-1000], 16000)
    assert mag[np.argmin(np.abs(freqs - 7000))] == pytest.approx(0.4, rel=0.01)
    assert 20 * np.log10(mag[np.abs(freqs - 6000) < 50].max() / 0.4) < -80
    # 44.1k -> 8k: the 7 kHz tone itself is out of band and must not fold to 1 kHz.
    mag, freqs = _spectrum(io.resample(_tone(7000, 44100, amp=0.4), 44100, 8000)[500:-500], 8000)
    assert 20 * np.log10(mag.max() / 0.4) < -80


def test_resample_multichannel_and_identity() -> None:
    x = np.stack([_tone(440, 48000), _tone(880, 48000)])
    out = io.resample(x, 48000, 16000)
    assert out.shape == (2, 16000)
    np.testing.assert_array_equal(io.resample(x, 16000, 16000), x)
    with pytest.raises(AudioError, match="orig_sr"):
        io.resample(x, 0, 16000)


def test_to_mono() -> None:
    left, right = _tone(440, 8000), _tone(440, 8000, amp=0.1)
    np.testing.assert_allclose(io.to_mono(np.stack([left, right])), (left + right) / 2)
    np.testing.assert_array_equal(io.to_mono(left), left)
    with pytest.raises(AudioError, match="shape"):
        io.to_mono(np.zeros((1, 2, 3)))


def test_normalize_peak_and_loudness() -> None:
    wav, sr = speech("level", sample_rate=16000)
    peaked = io.normalize_peak(wav, peak=0.5)
    assert np.max(np.abs(peaked)) == pytest.approx(0.5, rel=1e-6)
    quiet = io.normalize_loudness(wav, sr, target_dbfs=-30.0)
    rms_db = 20 * np.log10(np.sqrt(np.mean(quiet.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(-30.0, abs=1e-3)
    silence = np.zeros(1000, dtype=np.float32)
    np.testing.assert_array_equal(io.normalize_loudness(silence, sr), silence)
    np.testing.assert_array_equal(io.normalize_peak(silence), silence)
    assert wav.flags.writeable is False  # the shared clip was not touched


def test_trim() -> None:
    x = np.stack([np.arange(16000.0), np.arange(16000.0)])
    part = io.trim(x, 16000, start=0.25, end=0.5)
    assert part.shape == (2, 4000) and part[0, 0] == 4000
    assert io.trim(x[0], 16000, start=0.75).shape == (4000,)
    assert io.trim(x[0], 16000, end=10.0).shape == (16000,)
    with pytest.raises(AudioError, match="after end"):
        io.trim(x, 16000, start=0.5, end=0.25)
    with pytest.raises(AudioError, match="non-negative"):
        io.trim(x, 16000, start=-1.0)


def _broken_files(tmp: Path) -> dict[str, Path]:
    wav, sr = speech("broken", sample_rate=16000)
    io.save(tmp / "good.flac", wav, sr)
    io.save(tmp / "good.wav", wav, sr)
    flac, riff = (tmp / "good.flac").read_bytes(), (tmp / "good.wav").read_bytes()
    files = {
        "text renamed .wav": ("notes.wav", b"these are my notes, not audio\n" * 20),
        "truncated FLAC": ("cut.flac", flac[: len(flac) // 3]),
        "FLAC cut inside its header": ("head.flac", flac[:60]),
        "0-frame WAV": ("empty-data.wav", riff[:44]),
        "empty file": ("zero.wav", b""),
    }
    out = {}
    for case, (name, data) in files.items():
        (tmp / name).write_bytes(data)
        out[case] = tmp / name
    out["missing file"] = tmp / "nowhere.wav"
    out["directory"] = tmp
    return out


def test_every_malformed_file_raises_audio_error_naming_it(tmp_path: Path) -> None:
    for case, path in _broken_files(tmp_path).items():
        with pytest.raises(AudioError) as info:
            io.load(path)
        assert str(path) in str(info.value), case


def test_bad_save_arguments(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="suffix"):
        io.save(tmp_path / "a.mp4", np.zeros(10), 16000)
    with pytest.raises(AudioError, match="sample_rate"):
        io.save(tmp_path / "a.wav", np.zeros(10), -1)
    with pytest.raises(AudioError, match="NaN"):
        io.save(tmp_path / "a.wav", np.array([0.0, np.nan]), 16000)
    with pytest.raises(AudioError, match="no frames"):
        io.save(tmp_path / "a.wav", np.zeros(0), 16000)
    with pytest.raises(AudioError, match="dtype"):
        io.load(tmp_path / "a.wav", dtype="uint8")
