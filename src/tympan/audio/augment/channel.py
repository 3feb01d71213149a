"""Channel effects: hard clipping and band limiting (telephone, cheap microphones)."""

from __future__ import annotations

import numpy as np

from tympan.audio.augment._checks import (
    as_channels,
    checked_audio,
    checked_number,
    checked_rate,
    like,
)
from tympan.errors import AudioError, InvalidInputError

__all__ = ["band_limit", "clip"]


def clip(wav: np.ndarray, threshold: float) -> np.ndarray:
    """Hard-clip at ``threshold`` times the peak absolute sample (over all channels):
    ``threshold`` in (0, 1], where 1 changes nothing and 0.1 is heavy distortion."""
    x = checked_audio(wav)
    t = checked_number(threshold, "threshold", positive=True)
    if t > 1.0:
        raise InvalidInputError(f"threshold is a fraction of the peak in (0, 1], got {threshold}")
    limit = t * float(np.max(np.abs(x)))
    return np.clip(x, -limit, limit).astype(x.dtype, copy=False)


def band_limit(wav: np.ndarray, sr: int, low_hz: float | None = None,
               high_hz: float | None = None, *, order: int = 8) -> np.ndarray:
    """Keep ``low_hz``..``high_hz`` with a Butterworth filter run forwards and backwards
    (``scipy.signal.sosfiltfilt``): zero phase, so nothing shifts in time, and the magnitude
    response is squared (2 * ``order`` poles effectively). Only ``low_hz``: high-pass; only
    ``high_hz``: low-pass; both: band-pass, e.g. 300..3400 Hz for a telephone line."""
    from scipy.signal import butter, sosfiltfilt

    x = checked_audio(wav)
    rate = checked_rate(sr)
    nyquist = rate / 2.0
    if low_hz is None and high_hz is None:
        raise InvalidInputError("band_limit needs low_hz, high_hz or both")
    edges = []
    for name, hz in (("low_hz", low_hz), ("high_hz", high_hz)):
        if hz is not None:
            v = checked_number(hz, name, positive=True)
            if v >= nyquist:
                raise InvalidInputError(f"{name} must be below the Nyquist frequency "
                                        f"({nyquist:g} Hz at sr={rate}), got {hz}")
            edges.append(v)
    if len(edges) == 2 and edges[0] >= edges[1]:
        raise InvalidInputError(f"low_hz ({low_hz}) must be below high_hz ({high_hz})")
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 32:
        raise InvalidInputError(f"order must be an integer from 1 to 32, got {order!r}")
    btype = "bandpass" if len(edges) == 2 else "highpass" if low_hz is not None else "lowpass"
    sos = butter(order, edges if len(edges) == 2 else edges[0], btype=btype, fs=rate,
                 output="sos")
    try:
        out = sosfiltfilt(sos, as_channels(x), axis=-1)
    except ValueError as exc:  # shorter than the filter's edge padding
        raise AudioError(f"wav is too short ({x.shape[-1]} frames) for an order-{order} "
                         f"filter: {exc}") from exc
    return like(out, x)
