"""Per-layer p-value adjustments over a profile's layers: Holm, and Westfall and Young's
step-down min-P with conformal calibration (see ``profile.py``)."""

from __future__ import annotations

import numpy as np


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis."""
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, -1) * (m - np.arange(m))
    ranked = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    out = np.empty_like(ranked)
    np.put_along_axis(out, order, ranked, -1)
    return out


def step_down_min_p(p_ranks: np.ndarray, cal_ranks: np.ndarray) -> np.ndarray:
    """Westfall-Young step-down min-P adjusted p-values, conformal version.

    ``p_ranks`` (n, L): each test input's per-layer rank among calibration + itself, i.e.
    ``1 + #{calibration scores >= its score}``; ``cal_ranks`` (n, L, n_cal): each calibration
    input's per-layer rank among the calibration inputs plus that test input. Layer subsets
    S_k = the layers from the test's k-th smallest p-value on; the adjusted p of the k-th is
    the max over j <= k of (1 + #{calibration i: min over S_j of its rank <= the test's})
    / (n_cal + 1).
    """
    n_cal = cal_ranks.shape[-1]
    order = np.argsort(p_ranks, axis=1, kind="stable")  # smallest p (rank) first
    sorted_ranks = np.take_along_axis(p_ranks, order, 1)
    cal_sorted = np.take_along_axis(cal_ranks, order[:, :, None], 1)
    tail_min = np.minimum.accumulate(cal_sorted[:, ::-1], axis=1)[:, ::-1]  # min over S_k
    adjusted = (1 + (tail_min <= sorted_ranks[:, :, None]).sum(-1)) / (n_cal + 1)
    adjusted = np.maximum.accumulate(adjusted, axis=1)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, 1)
    return out


def conformal_p(statistic: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """(1 + #{calibration >= s}) / (n_cal + 1) for each s."""
    return conformal_p_sorted(statistic, np.sort(calibration))


def conformal_p_sorted(statistic: np.ndarray, cal: np.ndarray) -> np.ndarray:
    """``conformal_p`` against calibration statistics already sorted (a profile sorts
    them once, not on every request)."""
    above = len(cal) - np.searchsorted(cal, statistic, side="left")
    return (1 + above) / (len(cal) + 1)
