"""F0 (pitch contour) agreement between reference and synthesized speech, aligned by DTW.

Synthesized speech rarely has the reference's timing, so frames are first aligned by
dynamic time warping on mel-cepstra (as for MCD), on the same 10 ms grid as the F0 track
(:func:`tympan.audio.pitch.f0`). On the aligned frames voiced in both, ``rmse_hz`` is the
root mean square F0 difference and ``correlation`` the Pearson correlation of the two
contours; ``voicing_error`` is the fraction of aligned frames where one is voiced and the
other is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.audio.metrics.mcd import _mono, dtw_path, mel_cepstrum
from tympan.audio.pitch import f0

__all__ = ["PitchComparison", "f0_comparison"]

HOP_MS = 10.0
FRAME_MS = 25.0


@dataclass(frozen=True)
class PitchComparison:
    rmse_hz: float  # NaN when no aligned frame is voiced in both
    correlation: float  # NaN with fewer than 2 such frames or a flat contour
    voicing_error: float
    voiced_frames: int  # aligned frames voiced in both


def f0_comparison(ref_wav: Any, syn_wav: Any, sr: int, *, fmin: float = 60.0,
                  fmax: float = 400.0) -> PitchComparison:
    """F0 RMSE (Hz), correlation and voicing error of ``syn_wav`` against ``ref_wav``."""
    ref, syn = _mono(ref_wav, "ref_wav"), _mono(syn_wav, "syn_wav")
    i, j = dtw_path(_centred_cepstra(ref, sr), _centred_cepstra(syn, sr))
    f_ref = f0(ref, sr, fmin=fmin, fmax=fmax, hop_ms=HOP_MS)[i]
    f_syn = f0(syn, sr, fmin=fmin, fmax=fmax, hop_ms=HOP_MS)[j]
    v_ref, v_syn = ~np.isnan(f_ref), ~np.isnan(f_syn)
    both = v_ref & v_syn
    a, b = f_ref[both], f_syn[both]
    rmse = float(np.sqrt(np.mean((a - b) ** 2))) if a.size else math.nan
    flat = a.size < 2 or np.std(a) == 0 or np.std(b) == 0
    corr = math.nan if flat else float(np.corrcoef(a, b)[0, 1])
    return PitchComparison(rmse, corr, float(np.mean(v_ref != v_syn)), int(both.sum()))


def _centred_cepstra(wav: np.ndarray, sr: int) -> np.ndarray:
    """Mel-cepstra whose frame ``i`` is centred at sample ``i * hop``, like the F0 track's."""
    win = max(2, round(sr * FRAME_MS / 1000.0))
    return mel_cepstrum(np.pad(wav, (win // 2, win - win // 2)), sr, hop_ms=HOP_MS,
                        frame_ms=FRAME_MS)[: 1 + wav.size // max(1, round(sr * HOP_MS / 1000))]
