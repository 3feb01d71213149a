"""Pooling one comparison over several studies: a random-effects meta-analysis.

Pure functions of numbers. The between-study variance is DerSimonian-Laird's, the interval
Hartung-Knapp-Sidik-Jonkman's (t with k - 1 degrees of freedom): with 2-10 studies of a
few seeds, DerSimonian-Laird's z interval covered 0.81-0.95. Each study's standard error is
read back from its stored interval (:func:`interval_standard_error`) and, because a study of
3 seeds knows its own variance to 2 degrees of freedom, replaced by the per-seed variance
pooled over the studies (:func:`pooled_standard_errors`). docs/statistics.md shows the
simulations behind each choice (benchmarks/study_pooling.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.special import ndtri, stdtrit  # scipy.stats' t and normal quantiles, imported faster

from tympan.errors import InvalidInputError

_SE_FLOOR = 1e-12  # a zero-width interval (identical differences) still gets a finite weight


def interval_standard_error(low: float, high: float, n: int, confidence: float) -> float:
    """A standard error read back from a two-sided interval of ``n`` paired seeds."""
    tail = 0.5 + confidence / 2
    quantile = float(stdtrit(n - 1, tail)) if n >= 2 else float(ndtri(tail))
    return max((high - low) / (2 * quantile), _SE_FLOOR)


def pooled_standard_errors(standard_errors: Sequence[float],
                           seeds: Sequence[int]) -> list[float]:
    """Each study's standard error from the per-seed variance pooled over the studies:
    ``sqrt(s² / n)`` with ``s² = sum((n - 1) n se²) / sum(n - 1)``. A study of 3 seeds knows
    its variance to 2 degrees of freedom, so weighting by its own se² hands most of the
    weight to whichever study drew a small spread by chance. Studies of one seed (utterances
    resampled only) keep their own standard error."""
    if len(standard_errors) != len(seeds):
        raise InvalidInputError(f"need as many seed counts ({len(seeds)}) as standard errors "
                                f"({len(standard_errors)})")
    df = sum(n - 1 for n in seeds if n >= 2)
    if df == 0:
        return [float(s) for s in standard_errors]
    per_seed = sum((n - 1) * n * float(s) ** 2 for s, n in zip(standard_errors, seeds,
                                                               strict=True) if n >= 2) / df
    return [math.sqrt(per_seed / n) if n >= 2 else float(s)
            for s, n in zip(standard_errors, seeds, strict=True)]


def random_effects(estimates: Sequence[float], standard_errors: Sequence[float],
                   confidence: float = 0.95, *, modified: bool = False
                   ) -> tuple[float, float, float, float, float | None]:
    """Random-effects pooling: (estimate, low, high, tau², I²); I² is None for one study.

    tau² is DerSimonian-Laird's moment estimate and the estimate the mean weighted by ``w =
    1 / (se² + tau²)``. The interval is Hartung-Knapp-Sidik-Jonkman's: ``estimate ± t(k-1) *
    sqrt(q / sum(w))`` with ``q = sum(w (y - estimate)²) / (k - 1)``. ``modified`` floors q at
    1 (Knapp & Hartung 2003; Röver, Knapp & Friede 2015): never narrower than the t interval
    on the usual random-effects variance. tympan does not use it: on pooled within-study
    variances the plain interval holds its level and the floored one covers 0.98-1.00 with
    2-5 studies, up to 60% wider (docs/statistics.md). One study: its estimate with the z
    interval on its standard error (callers show the study's own interval instead).
    """
    y = [float(v) for v in estimates]
    v = [max(float(s), _SE_FLOOR) ** 2 for s in standard_errors]
    if not y or len(y) != len(v):
        raise InvalidInputError(f"need as many standard errors ({len(v)}) as estimates "
                                f"({len(y)}), at least one")
    w = [1 / vi for vi in v]
    fixed = sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sum(w)
    k = len(y)
    tau2, i2 = 0.0, None
    if k > 1:
        q = sum(wi * (yi - fixed) ** 2 for wi, yi in zip(w, y, strict=True))
        c = sum(w) - sum(wi * wi for wi in w) / sum(w)
        tau2 = max(0.0, (q - (k - 1)) / c) if c > 0 else 0.0
        i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    w_star = [1 / (vi + tau2) for vi in v]
    pooled = sum(wi * yi for wi, yi in zip(w_star, y, strict=True)) / sum(w_star)
    tail = 0.5 + confidence / 2
    if k == 1:
        half = float(ndtri(tail)) * math.sqrt(v[0])
        return pooled, pooled - half, pooled + half, tau2, i2
    scale = sum(wi * (yi - pooled) ** 2 for wi, yi in zip(w_star, y, strict=True)) / (k - 1)
    if modified:
        scale = max(1.0, scale)
    half = float(stdtrit(k - 1, tail)) * math.sqrt(scale / sum(w_star))
    return pooled, pooled - half, pooled + half, tau2, i2
