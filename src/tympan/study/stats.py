"""Seed-paired statistics of ablation studies: effects, intervals, p-values, Holm, verdicts.

Pure functions of numbers (no store, no runs). Every arm of a study runs with the same seeds
as the baseline arm, so comparisons are paired by seed: the unit of evidence is the per-seed
difference ``treatment - baseline`` in metric units. docs/statistics.md explains each
number, the method behind it, and the simulations that check it.

- p-value (``test="sign-flip"``, the default): the exact sign-flip randomisation test of the
  paired differences (all 2^n sign patterns up to 16 seeds, ``n_boot`` random ones above).
  It needs no normality, but its smallest p is 2 / 2^n: 0.25 with 3 seeds, 0.0625 with 5,
  so fewer than 6 seeds can never reach 0.05.
- Interval: the interval that inverts the sign-flip test, widened where the studentized
  (bootstrap-t) interval reaches further; with too few seeds for a bounded sign-flip interval
  (5 or fewer at 95%) the bootstrap-t interval alone, or the Student t interval where
  bootstrap-t is undefined (3 seeds).
- ``test="t-test"``: the paired t-test and the bootstrap-t interval (exact under normal noise
  at any n, too liberal under skewed noise).
- ``prob_improvement``: share of bootstrap means on the better side, ties counting half.
- ``utterance_effect``: two-way (seeds x utterances) "pigeonhole" bootstrap of corpus rates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# scipy.special, not scipy.stats: the same t distribution without the 1.5 s that importing
# scipy.stats adds to the start of the server (its study routes import this module)
from scipy.special import stdtr, stdtrit

from tympan.errors import InvalidInputError
from tympan.study.signflip import seeds_to_decide, sign_flip

IMPROVES = "improves"
HURTS = "hurts"
NO_EFFECT = "no detectable effect"

# Elements of one index matrix generated at a time (8 bytes each): bounds bootstrap memory.
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Effect:
    """An estimated effect of a treatment against the baseline, with its uncertainty."""

    estimate: float  # mean paired difference (treatment - baseline), metric units
    low: float  # confidence interval bounds (level chosen by the caller, 95% by default)
    high: float
    p_value: float  # two-sided, for H0: true mean difference = 0
    prob_improvement: float  # bootstrap share of resampled means on the better side
    n: int  # number of pairs (seeds) used
    n_boot: int
    method: str  # what was resampled: "seeds", "utterances" or "seeds+utterances"
    interval: str = "bootstrap-t"  # see INTERVALS
    test: str = "t-test"  # how p_value was computed: see TESTS


SIGN_FLIP, T_TEST = "sign-flip", "t-test"
TESTS = (SIGN_FLIP, T_TEST)
SIGN_FLIP_INTERVAL = "sign-flip+bootstrap-t"
INTERVALS = ("bootstrap-t", "student-t", SIGN_FLIP_INTERVAL, "percentile", "degenerate")


def _check_options(n_boot: int, confidence: float, test: str = T_TEST) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise InvalidInputError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence!r}")
    if test not in TESTS:
        raise InvalidInputError(f"unknown test {test!r}: use {' or '.join(TESTS)}")


def _as_float_array(values: object, name: str, ndim: int) -> np.ndarray:
    if isinstance(values, Iterable) and not isinstance(values, (np.ndarray, str, bytes)):
        values = list(values)
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numbers: {exc}") from None
    if arr.ndim != ndim:
        shape = "a sequence" if ndim == 1 else f"a {ndim}-D array"
        raise InvalidInputError(f"{name} must be {shape} of numbers, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise InvalidInputError(f"{name} contains an infinite value")
    return arr


# A spread at most this fraction of the values' magnitude is rounding, not spread: the sd of
# three copies of 0.2 comes out as ~1e-17, which must count as zero.
_RELATIVE_TOLERANCE = 1e-9


def _no_spread(sd: np.ndarray | float, scale: float) -> np.ndarray | bool:
    """Whether a standard deviation is zero up to floating-point rounding, relative to the
    largest magnitude ``scale`` of the values it came from."""
    return np.asarray(sd) <= _RELATIVE_TOLERANCE * scale


def _t_test(mean: float, sd: float, n: int) -> float:
    """Two-sided p-value of the one-sample t-test; exact answers for zero spread."""
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t = mean / (sd / math.sqrt(n))
    return float(min(1.0, 2.0 * stdtr(n - 1, -abs(t))))


def _prob_better(means: np.ndarray, lower_is_better: bool) -> float:
    better = means < 0 if lower_is_better else means > 0
    return float(better.mean() + 0.5 * (means == 0).mean())


def effect_from_differences(
    diffs: Iterable[float],
    *,
    lower_is_better: bool,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    test: str = SIGN_FLIP,
) -> Effect:
    """Effect of paired differences (treatment - baseline, one per seed); NaNs are dropped.

    ``test="sign-flip"`` (default): the exact sign-flip test and the interval that inverts it,
    widened to the bootstrap-t interval where that reaches further (docs/statistics.md).
    ``test="t-test"``: the paired t-test and the bootstrap-t interval.

    Zero spread is answered exactly: the interval is [d, d] (``interval="degenerate"``);
    all-zero differences give p = 1; identical nonzero ones p = 0 under the t-test and
    2 / 2^n (the smallest it can give) under the sign-flip test.
    """
    _check_options(n_boot, confidence, test)
    d = _as_float_array(diffs, "diffs", 1)
    d = d[~np.isnan(d)]
    if d.size < 2:
        raise InvalidInputError(
            f"need at least 2 paired differences (seeds) to estimate an effect, got {d.size}"
        )
    n = int(d.size)
    mean = float(d.mean())
    scale = float(np.abs(d).max())
    sd = float(d.std(ddof=1))
    rng = np.random.default_rng(seed)
    if _no_spread(sd, scale):
        means = np.full(1, mean)
        p = _t_test(mean, 0.0, n) if test == T_TEST else sign_flip(d, confidence, rng, n_boot,
                                                                   _RELATIVE_TOLERANCE)[0]
        return Effect(mean, mean, mean, p, _prob_better(means, lower_is_better), n, n_boot,
                      "seeds", "degenerate", test)
    se = sd / math.sqrt(n)
    means = np.empty(n_boot)
    sds = np.empty(n_boot)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        x = d[rng.integers(0, n, size=(stop - start, n))]
        means[start:stop] = x.mean(axis=1)
        sds[start:stop] = x.std(axis=1, ddof=1)
    # Studentized resamples; a resample of one repeated value has no spread: t* = ±inf.
    dev = means - mean
    t_star = np.where(dev > 0, np.inf, np.where(dev < 0, -np.inf, 0.0))
    np.divide(dev, sds / math.sqrt(n), out=t_star, where=~_no_spread(sds, scale))
    tail = (1.0 - confidence) / 2.0
    q_low, q_high = np.quantile(t_star, [tail, 1.0 - tail], method="inverted_cdf")
    if np.isfinite(q_low) and np.isfinite(q_high):
        low, high, interval = mean - q_high * se, mean - q_low * se, "bootstrap-t"
    else:  # too few seeds for bootstrap-t (always so with 3): the Student t interval
        half = float(stdtrit(n - 1, 1.0 - tail)) * se
        low, high, interval = mean - half, mean + half, "student-t"
    if test == T_TEST:
        p_value = _t_test(mean, sd, n)
    else:
        p_value, flip_low, flip_high = sign_flip(d, confidence, rng, n_boot,
                                                 _RELATIVE_TOLERANCE)
        if flip_low is not None and flip_high is not None:
            low, high = min(low, flip_low), max(high, flip_high)
            interval = SIGN_FLIP_INTERVAL
    return Effect(
        estimate=mean,
        low=float(low),
        high=float(high),
        p_value=p_value,
        prob_improvement=_prob_better(means, lower_is_better),
        n=n,
        n_boot=n_boot,
        method="seeds",
        interval=interval,
        test=test,
    )


def paired_effect(
    treatment: Iterable[float],
    baseline: Iterable[float],
    *,
    lower_is_better: bool,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    test: str = SIGN_FLIP,
) -> Effect:
    """Effect of ``treatment`` against ``baseline``, paired by position (seed order).

    A NaN in either arm (a failed trial) drops that pair.
    """
    t = _as_float_array(treatment, "treatment", 1)
    b = _as_float_array(baseline, "baseline", 1)
    if t.size != b.size:
        raise InvalidInputError(
            f"treatment has {t.size} values but baseline has {b.size}: pair them by seed"
        )
    keep = ~(np.isnan(t) | np.isnan(b))
    if keep.sum() < 2:
        raise InvalidInputError(
            f"only {int(keep.sum())} of {t.size} seeds have a value in both arms; "
            "need at least 2 pairs"
        )
    return effect_from_differences(
        t[keep] - b[keep], lower_is_better=lower_is_better, n_boot=n_boot,
        confidence=confidence, seed=seed, test=test,
    )


def _resample_counts(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """``rows`` bootstrap draws of ``size`` items, as how often each item was drawn."""
    idx = rng.integers(0, size, size=(rows, size)) + size * np.arange(rows)[:, None]
    return np.bincount(idx.ravel(), minlength=rows * size).reshape(rows, size).astype(float)


def _corpus_rates(errors: np.ndarray, counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-seed corpus rates under utterance weights: (draws, utterances) -> (draws, seeds)."""
    num = weights @ errors.T
    den = weights @ counts.T
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def utterance_effect(
    treatment_errors: object,
    treatment_counts: object,
    baseline_errors: object,
    baseline_counts: object,
    *,
    lower_is_better: bool = True,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Effect:
    """Effect on a corpus rate (e.g. WER), resampling seeds and test utterances.

    Arrays are shaped (seeds, utterances), one row per seed, the same utterances in the same
    order in every row and both arms; a 1-D array is one seed. The estimate is the mean over
    seeds of ``sum(errors) / sum(counts)`` of the treatment minus that of the baseline.

    Each bootstrap replicate draws the seeds and, independently, the utterances with
    replacement (Owen's pigeonhole bootstrap for a crossed design); the same utterance draw
    serves every seed and both arms, so the comparison stays paired. With one seed only
    utterances are resampled. The interval is the percentile interval of the replicates; the
    p-value inverts it: ``2 * min(#{rep <= 0} + 1, #{rep >= 0} + 1) / (n_boot + 1)``, capped at 1.
    """
    _check_options(n_boot, confidence)
    names = ("treatment_errors", "treatment_counts", "baseline_errors", "baseline_counts")
    arrays = []
    given = (treatment_errors, treatment_counts, baseline_errors, baseline_counts)
    for name, values in zip(names, given, strict=True):
        arr = _as_float_array(values, name, 1 if np.ndim(values) == 1 else 2)
        arr = arr[None, :] if arr.ndim == 1 else arr
        if np.isnan(arr).any():
            raise InvalidInputError(f"{name} contains NaN; drop failed seeds before comparing")
        if (arr < 0).any():
            raise InvalidInputError(f"{name} contains a negative value")
        arrays.append(arr)
    shapes = {arr.shape for arr in arrays}
    if len(shapes) != 1:
        raise InvalidInputError(
            "errors and counts of both arms must have the same (seeds, utterances) shape, got "
            + ", ".join(f"{n}={a.shape}" for n, a in zip(names, arrays, strict=True))
        )
    te, tc, be, bc = arrays
    n_seeds, n_utts = te.shape
    if n_seeds < 1 or n_utts < 2:
        raise InvalidInputError(
            f"need at least 1 seed and 2 utterances, got {n_seeds} seeds x {n_utts} utterances"
        )
    for name, counts in (("treatment_counts", tc), ("baseline_counts", bc)):
        if (counts.sum(axis=1) == 0).any():
            raise InvalidInputError(f"{name} sums to 0 for some seed: the rate is undefined")
    full = np.ones((1, n_utts))
    estimate = float((_corpus_rates(te, tc, full) - _corpus_rates(be, bc, full)).mean())

    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    rows = max(1, _CHUNK_ELEMENTS // max(n_utts, n_seeds))
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        w = _resample_counts(rng, stop - start, n_utts)
        diff = _corpus_rates(te, tc, w) - _corpus_rates(be, bc, w)  # (draws, seeds)
        if n_seeds > 1:
            diff = diff * _resample_counts(rng, stop - start, n_seeds)
        reps[start:stop] = diff.mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail])
    if np.ptp(reps) == 0.0:
        p_value = 1.0 if estimate == 0.0 else 0.0
    else:
        below, above = int((reps <= 0).sum()), int((reps >= 0).sum())
        p_value = min(1.0, 2.0 * (min(below, above) + 1) / (n_boot + 1))
    return Effect(
        estimate=estimate,
        low=float(min(low, estimate)),
        high=float(max(high, estimate)),
        p_value=float(p_value),
        prob_improvement=_prob_better(reps, lower_is_better),
        n=int(n_seeds),
        n_boot=n_boot,
        method="seeds+utterances" if n_seeds > 1 else "utterances",
        interval="percentile",
        test="bootstrap",
    )


def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order (monotone, capped at 1)."""
    p = _as_float_array(p_values, "p_values", 1)
    if np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise InvalidInputError("p_values must all be numbers between 0 and 1 (no NaN)")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled) if m else scaled
    return adjusted


def verdict(effect: Effect, p_adjusted: float, *, lower_is_better: bool,
            alpha: float = 0.05) -> str:
    """``"improves"``, ``"hurts"`` or ``"no detectable effect"``.

    Decided only when ``p_adjusted < alpha`` and the interval excludes 0 on the side of the
    estimate; "improves" means lower for a lower-is-better metric, higher otherwise.
    """
    if not p_adjusted < alpha:
        return NO_EFFECT
    if effect.estimate < 0 and effect.high < 0:
        return IMPROVES if lower_is_better else HURTS
    if effect.estimate > 0 and effect.low > 0:
        return HURTS if lower_is_better else IMPROVES
    return NO_EFFECT


def seeds_needed(
    diffs: Iterable[float],
    *,
    lower_is_better: bool,
    alpha: float = 0.05,
    power: float = 0.8,
    max_seeds: int = 64,
    n_sim: int = 2000,
    seed: int = 0,
    test: str = T_TEST,
) -> int | None:
    """Smallest seed count n' in n+1..max_seeds that detects the observed effect with ``power``.

    Bootstrap power: ``n_sim`` simulated studies of n' differences drawn with replacement from
    the observed ones (rescaled about their mean by sqrt(n/(n-1)), so the pool has the sample
    variance), each tested with the two-sided paired t-test at ``alpha``; a study counts when
    it rejects with the sign of the observed mean. One draw of ``max_seeds`` per study serves
    every n' (its first n' values), so power is computed for all n' at once. ``None`` means
    more than ``max_seeds`` (or no effect at all). ``lower_is_better`` does not change the
    answer: power to detect the effect is the same whichever side is better.

    ``test="sign-flip"``: n' is at least :func:`seeds_to_decide` at ``alpha`` (below that the
    test cannot reach ``alpha``); above it, the t-test's power stands in for the sign-flip
    test's (the two agree closely from 10 seeds on: docs/statistics.md).
    """
    del lower_is_better  # the test is two-sided; kept for a uniform call signature
    d = _as_float_array(diffs, "diffs", 1)
    d = d[~np.isnan(d)]
    if d.size < 2:
        raise InvalidInputError(f"need at least 2 paired differences, got {d.size}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise InvalidInputError("alpha and power must be between 0 and 1")
    if test not in TESTS:
        raise InvalidInputError(f"unknown test {test!r}: use {' or '.join(TESTS)}")
    n = int(d.size)
    floor = seeds_to_decide(alpha) if test == SIGN_FLIP else 2
    mean = float(d.mean())
    if n >= max_seeds:
        return None
    if np.ptp(d) == 0.0:
        return None if mean == 0.0 else (max(n + 1, floor) if floor <= max_seeds else None)
    pool = mean + math.sqrt(n / (n - 1)) * (d - mean)
    x = pool[np.random.default_rng(seed).integers(0, n, size=(n_sim, max_seeds))]
    k = np.arange(1, max_seeds + 1, dtype=float)
    sums = np.cumsum(x, axis=1)
    means = sums / k
    ss = np.maximum(np.cumsum(x * x, axis=1) - sums * means, 0.0)
    ks = np.arange(n + 1, max_seeds + 1)
    means, ss = means[:, ks - 1], ss[:, ks - 1]
    se = np.sqrt(ss / (ks - 1) / ks)
    crit = stdtrit(ks - 1, 1.0 - alpha / 2.0)
    same_side = np.sign(means) == np.sign(mean)
    t_abs = np.divide(np.abs(means), se, out=np.full_like(means, np.inf), where=se > 0)
    rejects = same_side & (means != 0) & (t_abs > crit)
    enough = np.flatnonzero((rejects.mean(axis=0) >= power) & (ks >= floor))
    return int(ks[enough[0]]) if enough.size else None
