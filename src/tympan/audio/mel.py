"""The mel filterbank in numpy, equal to ``librosa.filters.mel`` (HTK or Slaney scale).

Torch-free so that both ``tympan.audio.features`` (which caches it as a tensor) and the
numpy-only metrics (mel-cepstral distortion) use the same, librosa-verified filters.
"""

from __future__ import annotations

import numpy as np


def mel_weights(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool,
                norm: str | float | None) -> np.ndarray:
    """Triangular filters ``(n_mels, 1 + n_fft // 2)`` in float64; ``norm="slaney"`` divides
    each by its width in Hz, a number p scales each to unit Lp norm, None keeps peaks at 1."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_min, mel_max = hz_to_mel(np.array([fmin, fmax]), htk)
    mel_f = mel_to_hz(np.linspace(mel_min, mel_max, n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    elif norm is not None:
        lengths = np.sum(np.abs(weights) ** float(norm), axis=-1, keepdims=True) ** (1 / norm)
        weights = weights / np.where(lengths > 0, lengths, 1.0)  # empty rows stay empty
    return weights


def hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0  # Slaney: linear below 1 kHz, logarithmic above
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = f / f_sp
    above = f >= min_log_hz
    mels[above] = min_log_mel + np.log(f[above] / min_log_hz) / logstep
    return mels


def mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * m
    above = m >= min_log_mel
    freqs[above] = min_log_hz * np.exp(logstep * (m[above] - min_log_mel))
    return freqs
