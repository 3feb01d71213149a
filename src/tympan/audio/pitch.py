"""Fundamental frequency (F0) of speech with YIN (de Cheveigné and Kawahara 2002), in numpy.

``f0`` follows ``librosa.yin`` (centred frames, the cumulative mean normalized difference
function, the first trough below ``threshold``, parabolic refinement), and adds the voicing
decision that YIN's aperiodicity gives: a frame is voiced when its best trough is below
``voicing`` and it is not silent; unvoiced frames are NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tympan.errors import AudioError, InvalidInputError

__all__ = ["f0"]


def f0(wav: Any, sr: int, *, fmin: float = 60.0, fmax: float = 400.0, hop_ms: float = 10.0,
       frame_length: int | None = None, threshold: float = 0.1, voicing: float = 0.3,
       silence_db: float = -40.0) -> np.ndarray:
    """F0 in Hz per frame (frame ``i`` centred at sample ``i * hop``), NaN where unvoiced.

    ``frame_length`` defaults to the smallest power of two holding two periods of ``fmin``.
    A frame is unvoiced when its cumulative mean normalized difference at the chosen period
    is ``voicing`` or more, or its RMS is more than ``-silence_db`` dB below the loudest
    frame's."""
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"f0 needs a non-empty mono waveform (samples,), got shape {x.shape}")
    if not 0 < fmin < fmax <= sr / 2:
        raise InvalidInputError(f"need 0 < fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, "
                                f"sr={sr}")
    min_period = max(1, int(np.floor(sr / fmax)))
    max_period = int(np.ceil(sr / fmin))
    if frame_length is None:
        frame_length = 1 << int(np.ceil(np.log2(2 * max_period + 1)))
    window = frame_length // 2  # the difference function sums over half a frame
    if max_period >= window:
        raise InvalidInputError(f"frame_length={frame_length} is too short for fmin={fmin} Hz:"
                                f" use at least {2 * max_period + 2} samples")
    hop = max(1, round(sr * hop_ms / 1000.0))
    padded = np.pad(x, frame_length // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop]
    frames = frames[: 1 + x.size // hop]
    cmnd = _cumulative_mean_normalized_difference(frames, window, max_period)
    period, trough = _best_periods(cmnd, min_period, max_period, threshold)
    out = sr / period
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = 20.0 * np.log10(np.maximum(rms, 1e-10) / max(float(rms.max()), 1e-10)) > silence_db
    out[(trough >= voicing) | ~loud] = np.nan
    return out


def _cumulative_mean_normalized_difference(frames: np.ndarray, window: int,
                                           max_period: int) -> np.ndarray:
    """d'(tau) for tau in [0, max_period], per frame (YIN, eq. 8), via the FFT."""
    n = frames.shape[1]
    size = 1 << int(np.ceil(np.log2(n + window)))
    spectrum = np.fft.rfft(frames, size, axis=1)
    head = np.fft.rfft(frames[:, :window], size, axis=1)
    # r(tau) = sum_{j < window} x[j] x[j + tau]: correlation of the head with the frame.
    corr = np.fft.irfft(spectrum * np.conj(head), size, axis=1)[:, : max_period + 1]
    energy = np.cumsum(np.concatenate([np.zeros((frames.shape[0], 1)), frames**2], axis=1),
                       axis=1)
    # sum_{j < window} x[j + tau]^2 for every tau
    shifted = energy[:, window : window + max_period + 1] - energy[:, : max_period + 1]
    diff = np.maximum(energy[:, window : window + 1] + shifted - 2.0 * corr, 0.0)
    diff[:, 0] = 0.0
    taus = np.arange(1, max_period + 1)
    mean = np.cumsum(diff[:, 1:], axis=1) / taus
    out = np.ones_like(diff)
    out[:, 1:] = diff[:, 1:] / np.maximum(mean, 1e-12)
    return out


def _best_periods(cmnd: np.ndarray, min_period: int, max_period: int,
                  threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the refined period (samples) of the first trough below ``threshold`` (else
    of the global minimum) in [min_period, max_period], and the trough's value."""
    d = cmnd[:, min_period : max_period + 1]
    inner = (d[:, 1:-1] < d[:, :-2]) & (d[:, 1:-1] <= d[:, 2:])
    troughs = np.zeros_like(d, dtype=bool)
    troughs[:, 1:-1] = inner
    below = troughs & (d < threshold)
    first = np.argmax(below, axis=1)
    lag = np.where(below.any(axis=1), first, np.argmin(d, axis=1))
    rows = np.arange(d.shape[0])
    # Parabolic interpolation through the neighbours (kept inside the search range).
    left = np.clip(lag - 1, 0, d.shape[1] - 1)
    right = np.clip(lag + 1, 0, d.shape[1] - 1)
    a, b, c = d[rows, left], d[rows, lag], d[rows, right]
    denom = a - 2.0 * b + c
    shift = np.where((lag > 0) & (lag < d.shape[1] - 1) & (np.abs(denom) > 1e-12),
                     0.5 * (a - c) / np.where(np.abs(denom) > 1e-12, denom, 1.0), 0.0)
    return min_period + lag + np.clip(shift, -1.0, 1.0), b
