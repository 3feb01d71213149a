"""The sign-flip randomisation test of paired differences, and the interval it inverts to.

When a treatment makes no difference, which arm of a seed came out higher is a coin toss, so
each paired difference is as likely to be +d as -d: counting the sign patterns whose sum is
as extreme as the observed one gives an exact p-value whatever the noise distribution
(Fisher's randomisation test). Its resolution is 2 / 2^n, so with few seeds it cannot reach
small p-values at all: :func:`smallest_sign_flip_p` and :func:`seeds_to_decide` say how far.
docs/statistics.md has the derivation of the interval and the simulations.
"""

from __future__ import annotations

import math

import numpy as np

EXACT_SIGN_FLIP_MAX = 16  # seeds up to which every sign pattern is enumerated (2^16 = 65,536)


def smallest_sign_flip_p(n: int) -> float:
    """The smallest two-sided p-value the exact sign-flip test can give with ``n`` seeds."""
    return min(1.0, 2.0 / 2.0 ** n)


def seeds_to_decide(alpha: float, comparisons: int = 1) -> int:
    """The fewest seeds at which the sign-flip test can reach ``alpha`` after Holm over
    ``comparisons`` comparisons (its smallest p, times their number, below alpha)."""
    n = 2
    while comparisons * smallest_sign_flip_p(n) >= alpha:
        n += 1
    return n


def sign_flip(d: np.ndarray, confidence: float, rng: np.random.Generator, draws: int,
              tolerance: float = 1e-9) -> tuple[float, float | None, float | None]:
    """(p, low, high) of the sign-flip randomisation test of mean 0, and the interval that
    inverts it (None, None where it is unbounded).

    Flipping the signs of a subset S of the differences turns their sum T into
    T - 2 sum_S d; p is the share of sign patterns (the observed one included) whose |sum|
    is at least |T|. Testing mean mu instead of 0, the pattern that flips S reaches the
    observed sum exactly when mu is the mean of d over S, so the interval runs between order
    statistics of the subset means (the same argument that gives the Hodges-Lehmann interval
    from Walsh averages): with N patterns, it excludes the floor(alpha N / 2) - 1 smallest
    and largest subset means, one-sided alpha / 2 each. Sums within ``tolerance`` (relative
    to sum |d|) of the observed one count as ties, not as smaller.
    """
    n = d.size
    if n <= EXACT_SIGN_FLIP_MAX:  # every nonempty subset once; the empty one is the observed
        subsets = ((np.arange(1, 2 ** n)[:, None] >> np.arange(n)) & 1).astype(bool)
        total = 2 ** n
    else:  # Monte Carlo: random patterns plus the observed one
        subsets = rng.integers(0, 2, size=(draws, n)).astype(bool)
        total = draws + 1
    sums = subsets.astype(float) @ d
    observed = float(d.sum())
    tolerance = tolerance * float(np.abs(d).sum())
    extreme = np.abs(observed - 2.0 * sums) >= abs(observed) - tolerance
    p = float(min(1.0, (1 + int(extreme.sum())) / total))
    sizes = subsets.sum(axis=1)
    means = sums[sizes > 0] / sizes[sizes > 0]
    beyond = math.floor((1.0 - confidence) * total / 2.0 + 1e-9) - 1
    if beyond < 0 or means.size < 2 * beyond + 2:
        return p, None, None
    top = means.size - 1 - beyond
    ordered = np.partition(means, [beyond, top])
    return p, float(ordered[beyond]), float(ordered[top])
