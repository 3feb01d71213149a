"""Synthetic room reverberation: an exponentially decaying noise tail with early reflections."""

from __future__ import annotations

import math

import numpy as np

from tympan.audio.augment._checks import (
    as_channels,
    checked_audio,
    checked_number,
    checked_rate,
    generator,
    like,
)
from tympan.errors import InvalidInputError

__all__ = ["reverb", "synthetic_rir"]

_EARLY_REFLECTIONS = 8
_EARLY_WINDOW_S = 0.05  # early reflections arrive within the first 50 ms


def synthetic_rir(sr: int, rt60: float, rng: np.random.Generator | int, *,
                  length: int | None = None) -> np.ndarray:
    """A room impulse response (float64) whose energy decays 60 dB in ``rt60`` seconds.

    Index 0 is the direct sound (amplitude 1). Eight early reflections of random sign
    arrive in the first 50 ms, under the decay envelope; the late tail is Gaussian noise
    under the envelope ``10 ** (-3 t / rt60)`` holding as much energy as the direct sound
    (0 dB direct-to-reverberant ratio, a mid-sized room at a few metres). ``length`` defaults
    to ``1.2 * rt60`` seconds, by when the tail is 72 dB down.
    """
    rate = checked_rate(sr)
    t60 = checked_number(rt60, "rt60", positive=True)
    gen = generator(rng)
    n = math.ceil(1.2 * t60 * rate) if length is None else length
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"length must be a positive number of samples, got {length!r}")
    t = np.arange(n) / rate
    envelope = 10.0 ** (-3.0 * t / t60)  # amplitude; energy falls 60 dB at t = rt60
    tail = gen.standard_normal(n) * envelope
    tail[0] = 0.0
    energy = float(np.sum(tail**2))
    rir = tail / math.sqrt(energy) if energy > 0 else tail
    rir[0] = 1.0
    last = min(n - 1, round(_EARLY_WINDOW_S * rate))
    if last >= 1:
        at = gen.integers(1, last + 1, size=_EARLY_REFLECTIONS)
        gain = gen.uniform(0.2, 0.6, size=_EARLY_REFLECTIONS) * gen.choice([-1.0, 1.0],
                                                                          _EARLY_REFLECTIONS)
        np.add.at(rir, at, gain * envelope[at])
    return rir


def reverb(wav: np.ndarray, sr: int, rt60: float, rng: np.random.Generator | int) -> np.ndarray:
    """``wav`` convolved (``scipy.signal.fftconvolve``) with a :func:`synthetic_rir`.

    The result keeps ``wav``'s length (the tail past the end is cut; the direct sound is at
    lag 0, so nothing shifts) and its RMS level (over all channels). Every channel goes
    through the same room response.
    """
    from scipy.signal import fftconvolve

    x = checked_audio(wav)
    rir = synthetic_rir(sr, rt60, rng)
    clean = as_channels(x)
    wet = fftconvolve(clean, rir[None, :], axes=-1)[:, : clean.shape[1]]
    rms_in, rms_out = np.sqrt(np.mean(clean**2)), np.sqrt(np.mean(wet**2))
    if rms_out > 0:
        wet *= rms_in / rms_out
    return like(wet, x)
