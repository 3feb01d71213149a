"""Augmentations: exact SNR, pink slope, RT60, speed, band limits, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from speech import speech
from tympan.audio.augment import (
    add_noise,
    band_limit,
    clip,
    pink_noise,
    reverb,
    speed_perturb,
    synthetic_rir,
)
from tympan.errors import AudioError, InvalidInputError

SR = 16000


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    clean = clean.astype(np.float64)
    noise = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.mean(clean**2) / np.mean(noise**2)))


def _tone(hz: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(round(seconds * sr)) / sr)


def _peak_hz(x: np.ndarray, sr: int = SR) -> float:
    n = 1 << 20  # zero-padded: 0.015 Hz bins
    return float(np.argmax(np.abs(np.fft.rfft(x * np.hanning(x.size), n))) * sr / n)


def _babble_sources() -> list[np.ndarray]:
    texts = ["play some music", "what is the weather like", "call my sister", "stop the timer"]
    return [speech(t)[0] for t in texts]


# --- noise -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_add_noise_hits_the_snr(kind: str, snr: float) -> None:
    wav, _ = speech("turn the lights on")
    sources = _babble_sources() if kind == "babble" else None
    noisy = add_noise(wav, snr, kind, rng=1, babble_sources=sources)
    assert noisy.shape == wav.shape and noisy.dtype == wav.dtype
    assert _snr_db(wav, noisy) == pytest.approx(snr, abs=0.1)


def test_add_noise_multichannel_float64_and_resampled_babble() -> None:
    wav, _ = speech("turn the lights on")
    stereo = np.stack([wav, 0.5 * wav]).astype(np.float64)
    noisy = add_noise(stereo, 3.0, "white", rng=2)
    assert noisy.shape == stereo.shape and noisy.dtype == np.float64
    assert _snr_db(stereo, noisy) == pytest.approx(3.0, abs=1e-6)
    assert not np.allclose(noisy[0] - stereo[0], 2 * (noisy[1] - stereo[1]))  # own noise
    at_22k = [(speech(t, sample_rate=22050)[0], 22050) for t in ("call my sister", "stop")]
    babble = add_noise(wav, 0.0, "babble", rng=3, babble_sources=at_22k, sr=SR)
    assert _snr_db(wav, babble) == pytest.approx(0.0, abs=0.1)


def test_babble_is_speech_like_not_white() -> None:
    wav, _ = speech("turn the lights on")
    babble = add_noise(wav, 0.0, "babble", rng=4, babble_sources=_babble_sources()) - wav
    _, psd = welch(babble, SR, nperseg=1024)
    _, white = welch(add_noise(wav, 0.0, rng=4) - wav, SR, nperseg=1024)
    # Speech energy sits below 4 kHz; white noise spreads it evenly.
    assert psd[:256].sum() / psd.sum() > 0.9
    assert white[:256].sum() / white.sum() < 0.6


def test_noise_is_deterministic_under_the_seed() -> None:
    wav, _ = speech("turn the lights on")
    for kind, sources in (("white", None), ("pink", None), ("babble", _babble_sources())):
        a = add_noise(wav, 5.0, kind, rng=10, babble_sources=sources)
        b = add_noise(wav, 5.0, kind, rng=np.random.default_rng(10), babble_sources=sources)
        c = add_noise(wav, 5.0, kind, rng=11, babble_sources=sources)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    np.testing.assert_array_equal(pink_noise(1000, 5), pink_noise(1000, 5))
    assert not np.array_equal(pink_noise(1000, 5), pink_noise(1000, 6))


def test_pink_noise_falls_10_db_per_decade() -> None:
    x = pink_noise(1 << 18, 0)
    assert x.shape == (1 << 18,) and np.sqrt(np.mean(x**2)) == pytest.approx(1.0)
    f, psd = welch(x, SR, nperseg=4096)
    band = (f >= 50) & (f <= 6000)
    slope = np.polyfit(np.log10(f[band]), 10 * np.log10(psd[band]), 1)[0]
    assert slope == pytest.approx(-10.0, abs=1.0)  # -3 dB per octave


# --- reverberation ---------------------------------------------------------------------

def _schroeder_rt60(rir: np.ndarray, sr: int) -> float:
    """RT60 from the T20 slope (-5 to -25 dB) of the backward-integrated energy decay."""
    edc = np.cumsum(rir[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    fit = (edc_db <= -5) & (edc_db >= -25)
    slope = np.polyfit(np.arange(rir.size)[fit] / sr, edc_db[fit], 1)[0]  # dB per second
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0])
def test_synthetic_rir_has_the_asked_rt60(rt60: float) -> None:
    rir = synthetic_rir(SR, rt60, 0)
    assert rir[0] == 1.0 and rir.size == pytest.approx(1.2 * rt60 * SR, abs=1)
    assert _schroeder_rt60(rir, SR) == pytest.approx(rt60, rel=0.3)
    np.testing.assert_array_equal(rir, synthetic_rir(SR, rt60, 0))
    assert not np.array_equal(rir, synthetic_rir(SR, rt60, 1))


def test_reverb_keeps_length_dtype_and_level() -> None:
    wav, _ = speech("turn the lights on")
    wet = reverb(wav, SR, 0.6, 0)
    assert wet.shape == wav.shape and wet.dtype == wav.dtype
    assert np.sqrt(np.mean(wet.astype(np.float64) ** 2)) == pytest.approx(
        np.sqrt(np.mean(wav.astype(np.float64) ** 2)), rel=1e-4)
    assert np.corrcoef(wav, wet)[0, 1] < 0.95  # audibly changed
    np.testing.assert_array_equal(wet, reverb(wav, SR, 0.6, 0))
    stereo = reverb(np.stack([wav, wav]), SR, 0.6, 0)
    assert stereo.shape == (2, wav.size)
    np.testing.assert_allclose(stereo[0], stereo[1])


# --- speed, clipping, band limiting ----------------------------------------------------

@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_changes_duration_and_pitch(factor: float) -> None:
    tone = _tone(440.0).astype(np.float32)
    fast = speed_perturb(tone, SR, factor)
    assert fast.dtype == np.float32
    assert fast.size == pytest.approx(tone.size / factor, abs=1)
    assert _peak_hz(fast) == pytest.approx(440.0 * factor, rel=0.002)
    stereo = speed_perturb(np.stack([tone, tone]), SR, factor)
    assert stereo.shape == (2, fast.size)
    np.testing.assert_array_equal(speed_perturb(tone, SR, 1.0), tone)


def test_speed_perturb_on_speech() -> None:
    wav, _ = speech("turn the lights on")
    assert speed_perturb(wav, SR, 1.1).size == pytest.approx(wav.size / 1.1, abs=1)


def test_clip_bounds_and_leaves_small_samples() -> None:
    wav, _ = speech("turn the lights on")
    clipped = clip(wav, 0.3)
    limit = 0.3 * np.max(np.abs(wav))
    assert clipped.dtype == wav.dtype and clipped.shape == wav.shape
    assert np.max(np.abs(clipped)) == pytest.approx(limit)
    small = np.abs(wav) < limit
    np.testing.assert_array_equal(clipped[small], wav[small])
    np.testing.assert_array_equal(clip(wav, 1.0), wav)


def _level_db(x: np.ndarray, hz: float) -> float:
    """Level of an integer-Hz tone in a 1 s signal: its exact FFT bin."""
    return float(20 * np.log10(np.abs(np.fft.rfft(x))[int(hz)] + 1e-300))


def test_band_limit_attenuates_out_of_band_tones() -> None:
    mix = (_tone(100) + _tone(1000) + _tone(6000)).astype(np.float32)
    phone = band_limit(mix, SR, 300, 3400)
    assert phone.dtype == np.float32 and phone.shape == mix.shape
    assert _level_db(phone, 1000) == pytest.approx(_level_db(mix, 1000), abs=0.5)
    for hz in (100, 6000):
        assert _level_db(mix, hz) - _level_db(phone, hz) > 30
    low = band_limit(np.stack([mix, mix]), SR, high_hz=2000)
    assert _level_db(mix, 6000) - _level_db(low[1], 6000) > 30
    high = band_limit(mix, SR, low_hz=500)
    assert _level_db(mix, 100) - _level_db(high, 100) > 30
    assert _level_db(high, 6000) == pytest.approx(_level_db(mix, 6000), abs=0.5)


# --- bad parameters --------------------------------------------------------------------

def test_bad_parameters_name_the_parameter() -> None:
    wav = _tone(440).astype(np.float32)
    with pytest.raises(InvalidInputError, match="snr_db must be finite"):
        add_noise(wav, float("nan"), rng=0)
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        add_noise(wav, 5.0, "brown", rng=0)
    with pytest.raises(InvalidInputError, match="babble_sources"):
        add_noise(wav, 5.0, "babble", rng=0)
    with pytest.raises(InvalidInputError, match="rng must be"):
        add_noise(wav, 5.0, rng=None)  # type: ignore[arg-type]
    with pytest.raises(AudioError, match="silent"):
        add_noise(np.zeros(100, np.float32), 5.0, rng=0)
    with pytest.raises(InvalidInputError, match="rt60 must be positive"):
        reverb(wav, SR, -0.5, 0)
    with pytest.raises(InvalidInputError, match="factor must be positive"):
        speed_perturb(wav, SR, 0.0)
    with pytest.raises(InvalidInputError, match="factor must be finite"):
        speed_perturb(wav, SR, float("inf"))
    with pytest.raises(InvalidInputError, match="threshold"):
        clip(wav, 1.5)
    with pytest.raises(InvalidInputError, match="high_hz must be below the Nyquist"):
        band_limit(wav, SR, high_hz=9000)
    with pytest.raises(InvalidInputError, match="low_hz .* must be below high_hz"):
        band_limit(wav, SR, 3000, 300)
    with pytest.raises(AudioError, match="sr must be a positive integer"):
        speed_perturb(wav, 16000.0, 1.1)  # type: ignore[arg-type]
    with pytest.raises(AudioError, match="empty"):
        clip(np.zeros(0, np.float32), 0.5)
    with pytest.raises(AudioError, match=r"\(frames,\) or \(channels, frames\)"):
        reverb(np.zeros((1, 2, 100), np.float32), SR, 0.3, 0)
    with pytest.raises(AudioError, match="must hold floats"):
        add_noise(np.ones(100, np.int16), 5.0, rng=0)
    with pytest.raises(AudioError, match="NaN"):
        band_limit(np.array([0.1, np.nan] * 100), SR, high_hz=1000)
    with pytest.raises(AudioError, match="too short"):
        band_limit(np.ones(10), SR, high_hz=1000)
