"""Speed perturbation as in Kaldi / sox ``speed``: duration and pitch change together."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from tympan.audio.augment._checks import (
    as_channels,
    checked_audio,
    checked_number,
    checked_rate,
    like,
)
from tympan.errors import AudioError

__all__ = ["speed_perturb"]

# Bounds the polyphase filter: factor 1.1 is 11/10 exactly; odd factors are approximated
# to within 1e-6 relative.
_MAX_DENOMINATOR = 1000


def speed_perturb(wav: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play ``wav`` ``factor`` times faster at the same rate ``sr``: ``frames / factor``
    frames come back and every frequency is multiplied by ``factor`` (Kaldi's 0.9 / 1.0 / 1.1
    augmentation). Done by resampling from ``sr`` to ``sr / factor`` with
    ``scipy.signal.resample_poly``, ``factor`` approximated as a fraction ``p/q``
    (denominator <= 1000)."""
    from scipy.signal import resample_poly

    x = checked_audio(wav)
    checked_rate(sr)
    f = checked_number(factor, "factor", positive=True)
    ratio = Fraction(f).limit_denominator(_MAX_DENOMINATOR)
    if ratio == 0:
        raise AudioError(f"factor {factor!r} is too small to resample")
    if ratio == 1:
        return x.copy()
    if x.shape[-1] * ratio.denominator < ratio.numerator:
        raise AudioError(f"factor {factor!r} would shrink {x.shape[-1]} frames to none")
    # Resampling by q/p: p samples in become q out, so time shrinks by p/q = factor.
    out = resample_poly(as_channels(x), ratio.denominator, ratio.numerator, axis=-1)
    return like(out, x)
