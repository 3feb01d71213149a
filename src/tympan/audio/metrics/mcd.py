"""Mel cepstral distortion (MCD) between reference and synthesized speech, with DTW.

``MCD = mean over aligned frames of (10 / ln 10) * sqrt(2 * sum_d (c_ref[d] - c_syn[d])^2)``
in dB (Kubichek 1993), c0 (energy) left out by default. The formula assumes cepstra on
SPTK's scale (``log|H(w)| = c0 + sum_m c_m cos(m w)``), where it equals the RMS log-spectral
distance in dB; :func:`mel_cepstrum` computes them on that scale. Synthesized speech rarely
has the reference's timing, so frames are aligned with dynamic time warping first.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tympan.audio.mel import mel_weights
from tympan.audio.metrics._arrays import as_float_array
from tympan.errors import AudioError, InvalidInputError

__all__ = ["dtw_path", "mcd_from_audio", "mel_cepstral_distortion", "mel_cepstrum"]

_DB = 10.0 / math.log(10.0)


def mel_cepstral_distortion(ref_mcep: Any, syn_mcep: Any, *, dtw: bool = True,
                            exclude_c0: bool = True) -> float:
    """MCD in dB between mel-cepstra ``(frames, coefficients)`` of reference and synthesis.

    ``dtw=True`` aligns the frames by DTW (Euclidean frame cost on the compared
    coefficients) and averages over the warping path; ``dtw=False`` compares frame i with
    frame i and needs equal frame counts. ``exclude_c0`` drops coefficient 0 (overall level),
    as is customary, so a louder copy is not penalized.
    """
    ref = as_float_array(ref_mcep, "ref_mcep")
    syn = as_float_array(syn_mcep, "syn_mcep")
    for name, c in (("ref_mcep", ref), ("syn_mcep", syn)):
        if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] < (2 if exclude_c0 else 1):
            raise InvalidInputError(f"{name} must be (frames, coefficients) with at least one "
                                    f"frame{' and two coefficients' if exclude_c0 else ''}, "
                                    f"got shape {c.shape}")
    if ref.shape[1] != syn.shape[1]:
        raise InvalidInputError(f"ref_mcep has {ref.shape[1]} coefficients but syn_mcep has "
                                f"{syn.shape[1]}: compute both with the same order")
    if exclude_c0:
        ref, syn = ref[:, 1:], syn[:, 1:]
    if dtw:
        i, j = dtw_path(ref, syn)
        ref, syn = ref[i], syn[j]
    elif ref.shape[0] != syn.shape[0]:
        raise InvalidInputError(f"ref_mcep has {ref.shape[0]} frames but syn_mcep has "
                                f"{syn.shape[0]}: use dtw=True or trim them to equal length")
    dist = np.sqrt(2.0 * np.sum((ref - syn) ** 2, axis=1))
    return float(_DB * dist.mean())


def dtw_path(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices ``(i, j)`` of the minimum-cost monotonic alignment of ``x`` (N, D) and
    ``y`` (M, D) under Euclidean frame cost, with steps (1, 0), (0, 1) and (1, 1).

    O(N*M) time and memory. Each row of the cumulative cost is computed in one vectorized
    step: ``D[i, j] = c[i, j] + min(m[j], D[i, j-1])`` with ``m[j] = min(D[i-1, j],
    D[i-1, j-1])`` unrolls to ``S[j] + min_{k<=j}(m[k] - S[k-1])`` where ``S`` is the row's
    running sum of ``c``, a cumulative minimum.
    """
    sq = (np.sum(x**2, axis=1)[:, None] + np.sum(y**2, axis=1)[None, :] - 2.0 * x @ y.T)
    cost = np.sqrt(np.maximum(sq, 0.0))
    n, m = cost.shape
    acc = np.empty((n, m))
    acc[0] = np.cumsum(cost[0])
    for i in range(1, n):
        prev = acc[i - 1]
        best_above = np.minimum(prev, np.concatenate(([np.inf], prev[:-1])))
        run = np.cumsum(cost[i])
        acc[i] = run + np.minimum.accumulate(best_above - np.concatenate(([0.0], run[:-1])))
    # Walk back from the end, taking the cheapest predecessor (diagonal first on ties).
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            step = int(np.argmin((acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])))
            i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
        path.append((i, j))
    idx = np.array(path[::-1])
    return idx[:, 0], idx[:, 1]


def mel_cepstrum(wav: Any, sr: int, n_mfcc: int = 25, *, n_mels: int = 40,
                 frame_ms: float = 25.0, hop_ms: float = 5.0) -> np.ndarray:
    """Mel-cepstrum ``(frames, n_mfcc)`` of a mono waveform: MFCC computed with numpy/scipy
    (Hann-windowed STFT, HTK-scale triangular mel filterbank over 0..sr/2, natural log of
    the mel *amplitude*, DCT-II scaled so that ``log|X_k| = c0 + sum_{n>=1} c_n cos(...)``).

    That is SPTK's convention (``log|H(w)| = c0 + sum_m c_m cos(m w)``), the one the MCD
    formula assumes: with every coefficient kept, :func:`mel_cepstral_distortion` of two
    such cepstra is the RMS over mel bands of the difference of their log spectra in dB
    (mean difference removed). The frequency warping is a mel filterbank, not SPTK's
    all-pass ``mcep``, so values are on the published scale but not identical to a paper's.
    """
    from scipy.fft import dct, rfft

    x = _mono(wav, "wav")
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise AudioError(f"sr must be a positive integer number of Hz, got {sr!r}")
    if not 1 <= n_mfcc <= n_mels:
        raise InvalidInputError(f"n_mfcc must be between 1 and n_mels ({n_mels}), got {n_mfcc}")
    win = max(2, round(sr * frame_ms / 1000.0))
    hop = max(1, round(sr * hop_ms / 1000.0))
    n_fft = 1 << (win - 1).bit_length()
    if x.size < win:
        x = np.pad(x, (0, win - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop] * np.hanning(win)
    power = np.abs(rfft(frames, n=n_fft, axis=1)) ** 2
    # HTK-scale triangles with peaks at 1, from 0 Hz to Nyquist.
    mel_power = power @ mel_weights(sr, n_fft, n_mels, 0.0, sr / 2.0, htk=True, norm=None).T
    log_amp = 0.5 * np.log(np.maximum(mel_power, 1e-10))  # floor: -100 dB, for silence
    # scipy's DCT-II is y_k = 2 sum_n x_n cos(pi k (2n+1) / 2N); its inverse gives
    # x_n = y_0 / 2N + sum_{k>=1} (y_k / N) cos(...), so c0 = y_0 / 2N and c_k = y_k / N.
    cep = dct(log_amp, type=2, axis=1)[:, :n_mfcc] / n_mels
    cep[:, 0] /= 2.0
    return cep


def mcd_from_audio(ref_wav: Any, syn_wav: Any, sr: int, n_mfcc: int = 25, *,
                   dtw: bool = True) -> float:
    """MCD in dB between two mono waveforms at rate ``sr``, via :func:`mel_cepstrum`
    (MFCC-based, c0 excluded, DTW-aligned unless ``dtw=False``)."""
    ref = mel_cepstrum(ref_wav, sr, n_mfcc)
    syn = mel_cepstrum(syn_wav, sr, n_mfcc)
    if not dtw:
        frames = min(ref.shape[0], syn.shape[0])  # lengths may differ by a partial frame
        ref, syn = ref[:frames], syn[:frames]
    return mel_cepstral_distortion(ref, syn, dtw=dtw)


def _mono(wav: Any, name: str) -> np.ndarray:
    try:
        x = as_float_array(wav, name)
    except InvalidInputError as exc:
        raise AudioError(str(exc)) from exc
    if x.ndim != 1 or x.size == 0:
        raise AudioError(f"{name} must be a non-empty mono waveform (frames,), got shape "
                         f"{x.shape}")
    return x
