"""Speaker (or any binary) verification metrics: equal error rate and minimum DCF.

Scores: higher means "more likely the target". Labels: 1 (or True) for target trials,
0 (or False) for non-target trials. A trial is accepted when its score is >= the threshold.
Both functions sweep every distinct score as a threshold (plus "reject all"), so they are
exact for the given trials and O(n log n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.audio.metrics._arrays import as_float_array
from tympan.errors import InvalidInputError

__all__ = ["EERResult", "eer", "min_dcf"]


@dataclass(frozen=True)
class EERResult:
    """Equal error rate (a fraction in [0, 1]) and the score threshold where it occurs."""

    eer: float
    threshold: float


def eer(scores: Any, labels: Any) -> EERResult:
    """Equal error rate: where the miss rate equals the false-alarm rate.

    The two rates are step functions of the threshold; between adjacent operating points the
    ROC curve is interpolated linearly and the crossing found on that segment (the same
    value as ``brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)`` on sklearn's ROC),
    and the threshold is interpolated the same way.
    """
    thresholds, p_miss, p_fa = _operating_points(scores, labels)
    diff = p_miss - p_fa  # rises from -1 (accept all) to +1 (reject all)
    i = int(np.argmax(diff >= 0))
    if diff[i] == 0 or i == 0:
        return EERResult(float(p_miss[i]), float(thresholds[i]))
    a = -diff[i - 1] / (diff[i] - diff[i - 1])  # fraction of the way from point i-1 to i
    rate = p_miss[i - 1] + a * (p_miss[i] - p_miss[i - 1])
    threshold = thresholds[i - 1] + a * (thresholds[i] - thresholds[i - 1])
    return EERResult(float(rate), float(threshold))


def min_dcf(scores: Any, labels: Any, p_target: float = 0.01, c_miss: float = 1.0,
            c_fa: float = 1.0) -> float:
    """Normalized minimum detection cost (NIST SRE).

    ``DCF(t) = c_miss * P_miss(t) * p_target + c_fa * P_fa(t) * (1 - p_target)``, minimized
    over thresholds and divided by ``min(c_miss * p_target, c_fa * (1 - p_target))``, the
    cost of the best trivial system (accept all or reject all), so 1.0 means "no better than
    no system". SpeechBrain's ``minDCF`` returns the unnormalized minimum, i.e. this value
    times that divisor.
    """
    for name, v in (("p_target", p_target), ("c_miss", c_miss), ("c_fa", c_fa)):
        if not (isinstance(v, (int, float, np.floating)) and np.isfinite(v)):
            raise InvalidInputError(f"{name} must be a finite number, got {v!r}")
    if not 0.0 < p_target < 1.0:
        raise InvalidInputError(f"p_target must be strictly between 0 and 1, got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise InvalidInputError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
    _, p_miss, p_fa = _operating_points(scores, labels)
    dcf = c_miss * p_miss * p_target + c_fa * p_fa * (1.0 - p_target)
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def _operating_points(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, P_miss, P_fa) at every distinct score and one past the largest."""
    s = as_float_array(scores, "scores")
    lab = as_float_array(labels, "labels")
    if s.ndim != 1 or lab.ndim != 1 or s.size != lab.size:
        raise InvalidInputError(f"scores and labels must be 1-D and of equal length, got shapes "
                                f"{s.shape} and {lab.shape}")
    if not np.isin(lab, (0.0, 1.0)).all():
        raise InvalidInputError("labels must be 1 (target) or 0 (non-target)")
    target, nontarget = np.sort(s[lab == 1]), np.sort(s[lab == 0])
    if target.size == 0 or nontarget.size == 0:
        raise InvalidInputError(f"need both target and non-target trials, got {target.size} "
                                f"target and {nontarget.size} non-target")
    top = np.unique(s)
    # The "reject all" point: just above the largest score, so an interpolated threshold
    # stays finite.
    thresholds = np.append(top, np.nextafter(top[-1], np.inf))
    p_miss = np.searchsorted(target, thresholds, side="left") / target.size
    p_fa = 1.0 - np.searchsorted(nontarget, thresholds, side="left") / nontarget.size
    return thresholds, p_miss, p_fa
