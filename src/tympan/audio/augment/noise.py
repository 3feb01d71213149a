"""Additive noise at an exact signal-to-noise ratio: white, pink (1/f) or babble."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tympan.audio.augment._checks import (
    as_channels,
    checked_audio,
    checked_number,
    checked_rate,
    generator,
    like,
)
from tympan.errors import AudioError, InvalidInputError

__all__ = ["add_noise", "pink_noise"]

NOISE_KINDS = ("white", "pink", "babble")


def add_noise(wav: np.ndarray, snr_db: float, kind: str = "white", *,
              rng: np.random.Generator | int,
              babble_sources: Sequence[np.ndarray | tuple[np.ndarray, int]] | None = None,
              sr: int | None = None) -> np.ndarray:
    """``wav`` plus noise scaled so that ``10 log10(P_signal / P_noise) == snr_db`` exactly.

    Powers are mean squares over the whole array (all channels together); each channel gets
    its own noise draw. ``kind``:

    - ``"white"``: Gaussian;
    - ``"pink"``: 1/f power spectrum (:func:`pink_noise`);
    - ``"babble"``: the sum of ``babble_sources`` (other utterances, mono), each brought to
      the same RMS, started at a random offset and looped to the length of ``wav``. Sources
      given as ``(waveform, rate)`` are resampled to ``sr`` first; 3 to 7 talkers sound like
      a crowd, one or two like an interfering talker.
    """
    x = checked_audio(wav)
    snr = checked_number(snr_db, "snr_db")
    if kind not in NOISE_KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    gen = generator(rng)
    clean = as_channels(x)
    signal_power = float(np.mean(clean**2))
    if signal_power == 0.0:
        raise AudioError("wav is silent: a signal-to-noise ratio needs some signal")
    channels, frames = clean.shape
    if kind == "white":
        noise = gen.standard_normal((channels, frames))
    elif kind == "pink":
        noise = np.stack([pink_noise(frames, gen) for _ in range(channels)])
    else:
        sources = _babble_sources(babble_sources, sr)
        noise = np.stack([_babble(sources, frames, gen) for _ in range(channels)])
    noise_power = float(np.mean(noise**2))
    if noise_power == 0.0:  # e.g. pink noise of a single frame, which is all DC
        raise AudioError(f"cannot make {kind} noise for {frames} frame(s): give longer audio")
    noise *= np.sqrt(signal_power / (noise_power * 10.0 ** (snr / 10.0)))
    return like(clean + noise, x)


def pink_noise(n: int, rng: np.random.Generator | int) -> np.ndarray:
    """``n`` samples (float64, unit RMS) of noise with a 1/f power spectrum: -3 dB per octave,
    -10 dB per decade. Shaped in the frequency domain (white Gaussian spectrum times
    1/sqrt(f), DC removed), so the slope holds over the whole band."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise InvalidInputError(f"n must be a positive number of samples, got {n!r}")
    gen = generator(rng)
    spectrum = np.fft.rfft(gen.standard_normal(int(n)))
    f = np.arange(spectrum.size, dtype=np.float64)
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(f[1:])
    out = np.fft.irfft(spectrum, n=int(n))
    rms = float(np.sqrt(np.mean(out**2)))
    # n == 1 leaves only the (removed) DC: no pink content is possible, give silence.
    return out / rms if rms > 0 else out


def _babble_sources(sources: Sequence[Any] | None, sr: int | None) -> list[np.ndarray]:
    if not sources:
        raise InvalidInputError('kind="babble" needs babble_sources: a list of other '
                                "utterances (mono waveforms) to mix into a crowd")
    from tympan.audio.io import resample

    out = []
    for i, src in enumerate(sources):
        name = f"babble_sources[{i}]"
        if isinstance(src, tuple):
            if sr is None:
                raise InvalidInputError(f"{name} is a (waveform, rate) pair: pass sr= (the rate "
                                        "of wav) so it can be resampled")
            wav, rate = src
            src = resample(checked_audio(wav, name), checked_rate(rate, f"{name} rate"),
                           checked_rate(sr))
        src = checked_audio(src, name)
        if src.ndim != 1:
            raise AudioError(f"{name} must be mono (frames,), got shape {src.shape}")
        rms = float(np.sqrt(np.mean(src.astype(np.float64) ** 2)))
        if rms == 0.0:
            raise AudioError(f"{name} is silent: it would add nothing to the babble")
        out.append(src.astype(np.float64) / rms)
    return out


def _babble(sources: list[np.ndarray], frames: int, gen: np.random.Generator) -> np.ndarray:
    total = np.zeros(frames)
    for src in sources:
        # Loop the utterance from a random start so talkers do not all begin together.
        start = int(gen.integers(0, src.size))
        total += np.take(src, np.arange(start, start + frames), mode="wrap")
    return total
