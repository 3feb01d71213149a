"""Source separation / enhancement metrics: scale-invariant SDR."""

from __future__ import annotations

from typing import Any

import numpy as np

from tympan.audio.metrics._arrays import as_float_array
from tympan.errors import AudioError, InvalidInputError

__all__ = ["si_sdr"]

_EPS = np.finfo(np.float64).eps


def si_sdr(estimate: Any, reference: Any, zero_mean: bool = True) -> float | np.ndarray:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019).

    The reference is scaled to best fit the estimate (``alpha = <est, ref> / <ref, ref>``);
    SI-SDR is the energy of ``alpha * ref`` over that of ``est - alpha * ref``. Time is the
    last axis; leading axes are a batch and come back as an array (a 1-D pair gives a
    float). ``zero_mean`` removes each signal's mean first, as is standard. As in
    torchmetrics, ``eps`` keeps a perfect estimate finite (about 150 dB at unit power).
    Numpy arrays or torch tensors; computed in float64.
    """
    try:
        est = as_float_array(estimate, "estimate")
        ref = as_float_array(reference, "reference")
    except InvalidInputError as exc:
        raise AudioError(str(exc)) from exc
    if est.shape != ref.shape or est.ndim == 0 or est.shape[-1] == 0:
        raise AudioError(f"estimate and reference must have the same non-empty shape "
                         f"(..., time), got {est.shape} and {ref.shape}")
    if zero_mean:
        est = est - est.mean(axis=-1, keepdims=True)
        ref = ref - ref.mean(axis=-1, keepdims=True)
    ref_energy = np.sum(ref**2, axis=-1, keepdims=True)
    if np.any(ref_energy == 0):
        silent = np.argwhere(ref_energy[..., 0] == 0)
        where = f" (batch item {tuple(silent[0])})" if ref.ndim > 1 else ""
        raise AudioError(f"reference is silent{where}{' after removing its mean' * zero_mean}: "
                         "SI-SDR is undefined")
    alpha = (np.sum(est * ref, axis=-1, keepdims=True) + _EPS) / (ref_energy + _EPS)
    target = alpha * ref
    noise = est - target
    ratio = (np.sum(target**2, axis=-1) + _EPS) / (np.sum(noise**2, axis=-1) + _EPS)
    out = 10.0 * np.log10(ratio)
    return float(out) if out.ndim == 0 else out
