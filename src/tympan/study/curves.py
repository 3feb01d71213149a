"""Learning curves: how a metric improves with training data, and how much data a target needs.

Pure functions of numbers (no store, no runs). Curves are fitted in the metric's "worse"
direction ``u`` (the metric itself when lower is better, its negative when higher is better).
The default estimator, ``averaged`` (:mod:`tympan.study.curve_shapes`), averages over curve
shapes (power law, exponential, S-shaped in log n), because a power law fitted to a curve of
another shape over-promises. Two single power laws with an irreducible term stay for
comparison (the backtest in benchmarks/learning_curves.py runs all three)::

    u(n) = a + d * (n / n0) ** -c        a: irreducible level, d >= 0: excess at the smallest
                                          size n0, c > 0: how fast the excess shrinks

both fitted by ``scipy.optimize.curve_fit`` to the per-size means, with a band around the
curve from the delta method:

- ``unweighted``: what most people do: the means alone, the noise guessed from how the few
  points scatter around the curve (3 parameters and a handful of points leave one or two
  degrees of freedom for that guess, none with three sizes), Student t quantiles.
- ``weighted``: each mean weighted by the noise its seeds (and resampled test utterances)
  say it has, and that noise taken as known (widened when the points scatter more than it
  says around the curve), normal quantiles. Seeds are pooled across sizes.

The data size that reaches a target is where the target line meets the curve, and its
interval is where it meets the band's two edges: the picture in the report is the answer.
tests/test_curves.py and benchmarks/learning_curves.py measure the estimators' coverage;
docs/quantify.md has the figures.

Following Mahmood et al. (CVPR 2022), answers do not over-promise: a required size beyond
``max_extrapolation`` times the largest size measured is "beyond what the curve supports",
a target below the irreducible level is "not reachable", and any answer past the largest
size measured is labelled an extrapolation, and every answer short of "reached" or "not
reachable" says how much data to have before estimating again (``SizeAnswer.next_round``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tympan.errors import InvalidInputError

Method = Literal["averaged", "weighted", "unweighted"]
METHODS: tuple[str, ...] = ("averaged", "weighted", "unweighted")
_EXPONENTS = np.exp(np.linspace(math.log(0.02), math.log(3.0), 160))  # starting points for c
_C_RANGE = (0.01, 4.0)  # exponents outside this are not learning curves we can extrapolate
_MIN_SIZES = 3
_PRIOR_DOF = 2.0  # how much a size's seed spread leans on the pooled model of it


@dataclass(frozen=True)
class CurveData:
    """What a curve is fitted to: per size, the mean over seeds and that mean's variance."""

    sizes: np.ndarray  # ascending, distinct, > 0
    means: np.ndarray
    variances: np.ndarray  # of each mean (seed spread / seeds, plus utterance sampling)
    seeds: np.ndarray  # how many seeds each mean averages
    lower_is_better: bool
    bound: float | None  # the best value the metric can take (0 for an error rate), if any
    seed_variance: float  # variance of one seed's value around the mean, at the largest size


def curve_data(sizes: list[float] | np.ndarray, values: list[list[float]] | list[np.ndarray], *,
               lower_is_better: bool = True, bound: float | None = None,
               extra_variances: list[float] | np.ndarray | None = None) -> CurveData:
    """Per-size means and their variances from per-seed values (``values[i]``: the seeds of
    ``sizes[i]``). Sizes may repeat (their values are pooled). Seeds' spread is pooled
    across sizes (two or three seeds per size say little alone); ``extra_variances`` adds
    per-size variance from elsewhere (resampled test utterances)."""
    if len(sizes) != len(values):
        raise InvalidInputError(f"{len(sizes)} sizes but {len(values)} lists of values")
    pooled: dict[float, list[float]] = {}
    extra: dict[float, float] = {}
    for i, (size, vals) in enumerate(zip(sizes, values, strict=True)):
        size = float(size)
        if not math.isfinite(size) or size <= 0:
            raise InvalidInputError(f"data sizes must be positive numbers, got {size!r}")
        vals = [float(v) for v in np.atleast_1d(np.asarray(vals, dtype=float))]
        if not vals or not all(math.isfinite(v) for v in vals):
            raise InvalidInputError(f"size {size:g}: values must be finite numbers, got {vals}")
        pooled.setdefault(size, []).extend(vals)
        if extra_variances is not None:
            extra[size] = max(extra.get(size, 0.0), float(extra_variances[i]))
    if len(pooled) < _MIN_SIZES:
        raise InvalidInputError(f"a learning curve needs at least {_MIN_SIZES} data sizes, got "
                                f"{len(pooled)}")
    order = sorted(pooled)
    groups = [np.asarray(pooled[s]) for s in order]
    counts = np.array([len(g) for g in groups], dtype=float)
    means = np.array([g.mean() for g in groups])
    scale = max(float(np.abs(means).max()), 1e-12)
    # Seeds spread less as data grows (an error rate of 0.7 swings more than one of 0.1), and
    # two or three seeds per size say little alone. Each size's own spread is shrunk toward
    # a spread proportional to its mean, pooled over sizes (its coefficient of variation),
    # with the weight of _PRIOR_DOF degrees of freedom.
    dof = counts - 1
    own = np.array([g.var(ddof=1) if len(g) > 1 else 0.0 for g in groups])
    level = np.maximum(np.abs(means), 1e-6 * scale)
    cv2 = float((dof * own / level ** 2).sum() / dof.sum()) if dof.sum() > 0 else 0.0
    per_seed = (dof * own + _PRIOR_DOF * cv2 * level ** 2) / (dof + _PRIOR_DOF)
    # A floor: a metric that never varied still has rounding-level noise, never zero.
    variances = np.maximum(per_seed / counts, (1e-6 * scale) ** 2)
    seed_var = float(per_seed[-1])
    if extra_variances is not None:
        variances = variances + np.array([extra[s] for s in order])
    if bound is None and lower_is_better and (means >= 0).all():
        bound = 0.0  # an error rate
    elif bound is None and not lower_is_better and ((means >= 0) & (means <= 1)).all():
        bound = 1.0  # an accuracy
    return CurveData(np.array(order), means, variances, counts, lower_is_better, bound, seed_var)


@dataclass(frozen=True)
class Prediction:
    """The curve's value at a size: an estimate and an interval at ``level``."""

    size: float
    estimate: float
    low: float
    high: float
    level: float
    extrapolated: bool  # past the largest size measured


@dataclass(frozen=True)
class SizeAnswer:
    """How much data reaches ``target``: the estimate and interval, or why there is none."""

    target: float
    level: float
    estimate: float  # math.inf when the target is not reachable
    low: float
    high: float  # math.inf when the interval's upper end is beyond what the curve supports
    have: float  # the largest size measured
    reached: bool  # the target is already met at the largest size measured (by the curve)
    reachable: float  # share of the draws in which the curve ever gets to the target
    supported_limit: float  # sizes beyond this are not answered
    verdict: Literal["reached", "estimate", "beyond", "unreachable"]
    next_round: float  # how much data to have before estimating again; NaN: not more data

    @property
    def extrapolated(self) -> bool:
        return self.estimate > self.have


@dataclass
class CurveFit:
    """A fitted learning curve: what every estimator answers (a band around the curve, a
    prediction at a size, the size that reaches a target). Subclasses say how the band is made:
    :class:`PowerLawFit` here, :class:`tympan.study.curve_shapes.AveragedFit` by default."""

    method: str
    data: CurveData
    n0: float  # the smallest size measured
    max_extrapolation: float
    inflation: float  # how much more the points scatter than their noise says (1: not more)

    @property
    def sign(self) -> float:
        return 1.0 if self.data.lower_is_better else -1.0

    @property
    def largest(self) -> float:
        return float(self.data.sizes[-1])

    @property
    def limit(self) -> float:
        """The largest size the curve answers for."""
        return self.largest * self.max_extrapolation

    @property
    def irreducible(self) -> float:
        """The level the curve settles at with unlimited data, in metric units."""
        raise NotImplementedError

    def describe(self, unit_text: str) -> str:
        """The fitted curve in one line (``unit_text``: the smallest size, as people say it)."""
        raise NotImplementedError

    def band(self, sizes: np.ndarray | list[float], level: float = 0.8,
             seeds: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(estimate, low, high) of the mean metric at each size, in metric units: the mean
        over infinitely many seeds, or with ``seeds``, the mean of that many."""
        _check_level(level)
        n = np.asarray(sizes, dtype=float)
        value, low, high = self._band_worse(n, level, seeds)
        low, high = self.sign * low, self.sign * high
        if self.sign < 0:
            low, high = high, low
        if self.data.bound is not None:
            # An error rate is never below 0 (an accuracy never above 1): the band stops there.
            low, high = ((np.maximum(low, self.data.bound), high) if self.sign > 0
                         else (low, np.minimum(high, self.data.bound)))
        return self.sign * value, low, high

    def _band_worse(self, n: np.ndarray, level: float,
                    seeds: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(estimate, low, high) in "worse" units (lower is better), low <= high."""
        raise NotImplementedError

    def _reachable(self, target_worse: float) -> float:
        """Share of the irreducible level's uncertainty at or below ``target_worse``."""
        raise NotImplementedError

    def predict(self, size: float, level: float = 0.8, seeds: int | None = None) -> Prediction:
        """The mean metric at ``size``, with an interval (see :meth:`band`)."""
        value, low, high = (float(v[0]) for v in self.band([size], level, seeds))
        return Prediction(size, value, low, high, level, size > self.largest)

    def size_for(self, target: float, level: float = 0.8) -> SizeAnswer:
        """The data size at which the curve reaches ``target``, with an interval: where the
        target line meets the fitted curve and the edges of its band (the band plotted
        in the report), up to :attr:`limit`."""
        _check_level(level)
        if not math.isfinite(target):
            raise InvalidInputError(f"the target must be a finite number, got {target!r}")
        grid = np.exp(np.linspace(math.log(self.n0), math.log(self.limit), 600))
        value, low, high = self.band(grid, level)
        # "good enough" at a size: at or past the target in the metric's better direction
        def first(curve: np.ndarray) -> float:
            ok = curve * self.sign <= target * self.sign
            return float(grid[int(np.argmax(ok))]) if ok.any() else math.inf

        optimistic, pessimistic = (low, high) if self.sign > 0 else (high, low)
        estimate, early, late = first(value), first(optimistic), first(pessimistic)
        reachable = self._reachable(self.sign * target)
        if estimate <= self.largest:
            verdict = "reached"
        elif math.isfinite(estimate):
            verdict = "estimate"
        elif self.sign * target <= self.sign * self.irreducible and reachable < (1 - level) / 2:
            verdict = "unreachable"  # the irreducible level's interval is past the target
        else:
            verdict = "beyond"
        return SizeAnswer(target, level, estimate, early, late, self.largest,
                          verdict == "reached", reachable, self.limit, verdict,
                          _next_round(verdict, early, estimate, self.largest, self.limit))


def _next_round(verdict: str, early: float, estimate: float, have: float,
                limit: float) -> float:
    """How much data to have before estimating again (Mahmood et al.: estimate in rounds): up
    to the optimistic end of the interval when it is past the data, else up to the estimate,
    else twice the data; at least half as much again as now (a smaller step barely moves the
    curve) and never past what the curve supports. NaN when more data is not the answer."""
    if verdict in ("reached", "unreachable"):
        return math.nan
    if have < early < math.inf:
        step = early
    elif have < estimate < math.inf:
        step = estimate
    else:
        step = 2 * have
    return min(max(step, 1.5 * have), limit)


@dataclass
class PowerLawFit(CurveFit):
    """One power law with an irreducible term, its parameters and their covariance."""

    params: np.ndarray  # (a, d, c) in "worse" units
    covariance: np.ndarray  # of params
    dof: int | None  # Student t degrees of freedom of the intervals; None: normal

    def point(self) -> tuple[float, float, float]:
        """(irreducible level, excess at the smallest size, exponent) in metric units."""
        a, d, c = (float(p) for p in self.params)
        return self.sign * a, self.sign * d, c

    @property
    def irreducible(self) -> float:
        return self.point()[0]

    def describe(self, unit_text: str) -> str:
        a, d, c = self.point()
        return f"power law ({self.method}): {a:.4g} + {d:.4g} · (n / {unit_text})^-{c:.3g}"

    def _band_worse(self, n: np.ndarray, level: float,
                    seeds: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, d, c = self.params
        x = n / self.n0
        power = x ** -c
        grad = np.stack([np.ones_like(x), power, -d * power * np.log(x)], -1)
        variance = np.einsum("si,ij,sj->s", grad, self.covariance, grad)
        if seeds:
            variance = variance + self.data.seed_variance * self.inflation / seeds
        from scipy import stats

        q = stats.norm.ppf(0.5 + level / 2) if self.dof is None else \
            stats.t.ppf(0.5 + level / 2, self.dof)
        half = q * np.sqrt(np.clip(variance, 0.0, None))
        value = a + d * power
        return value, value - half, value + half

    def _reachable(self, target_worse: float) -> float:
        from scipy import stats

        a = float(self.params[0])
        a_se = math.sqrt(max(float(self.covariance[0, 0]), 0.0))
        return float(stats.norm.cdf((target_worse - a) / a_se)) if a_se > 0 else \
            float(target_worse > a)


def fit_curve(data: CurveData, *, method: Method = "averaged",
              max_extrapolation: float = 10.0) -> CurveFit:
    """Fit ``data`` with ``method``: ``averaged`` (over curve shapes, the default),
    ``weighted`` or ``unweighted`` (one power law)."""
    if method not in METHODS:
        raise InvalidInputError(f"unknown curve method {method!r}: use one of "
                                f"{', '.join(METHODS)}")
    if not max_extrapolation >= 1:
        raise InvalidInputError(f"max_extrapolation must be at least 1, got {max_extrapolation}")
    if method == "averaged":
        from tympan.study.curve_shapes import fit_averaged

        return fit_averaged(data, max_extrapolation)
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    sign = 1.0 if data.lower_is_better else -1.0
    u = sign * data.means
    floor = -math.inf if data.bound is None else sign * data.bound
    n0 = float(data.sizes[0])
    xs = data.sizes / n0
    weighted = method == "weighted"

    def model(x: np.ndarray, a: float, d: float, c: float) -> np.ndarray:
        return a + d * x ** -c

    # Start from the best exponent on a grid (linear in a and d once c is fixed).
    coef, chi2 = _grid_fits(xs, u, 1.0 / data.variances if weighted else np.ones_like(u))
    best = int(np.argmin(chi2))
    start = [max(min(coef[best, 0], float(u.min())), floor + 1e-9), max(coef[best, 1], 1e-9),
             float(np.clip(_EXPONENTS[best], _C_RANGE[0] * 1.01, _C_RANGE[1] * 0.99))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # an undefined covariance: below
            params, cov = curve_fit(model, xs, u, p0=start,
                                    sigma=np.sqrt(data.variances) if weighted else None,
                                    absolute_sigma=weighted, maxfev=20_000,
                                    bounds=([floor, 0.0, _C_RANGE[0]],
                                            [np.inf, np.inf, _C_RANGE[1]]))
    except (RuntimeError, ValueError) as exc:
        raise InvalidInputError(f"no learning curve fits these points: {exc}") from None
    dof = len(u) - 3
    inflation = 1.0
    if weighted and dof > 0:
        resid = (u - model(xs, *params)) / np.sqrt(data.variances)
        inflation = max(1.0, float((resid ** 2).sum()) / dof)
        cov = cov * inflation
    cov = np.where(np.isfinite(cov), cov, 0.0)
    return PowerLawFit(method=method, data=data, n0=n0, max_extrapolation=max_extrapolation,
                       inflation=inflation, params=np.asarray(params, dtype=float),
                       covariance=cov, dof=None if weighted else max(dof, 1))


def _grid_fits(x: np.ndarray, u: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of u = a + d * x ** -c for every c on the grid:
    ((a, d) per exponent, chi-square per exponent)."""
    xc = x[None, :] ** -_EXPONENTS[:, None]
    s0, s1, s2 = w.sum(), (w * xc).sum(1), (w * xc * xc).sum(1)
    t0, t1 = (w * u).sum(), (w * xc * u).sum(1)
    det = s0 * s2 - s1 * s1
    det = np.where(np.abs(det) < 1e-300, 1e-300, det)
    a = (s2 * t0 - s1 * t1) / det
    d = (s0 * t1 - s1 * t0) / det
    resid = u[None, :] - a[:, None] - d[:, None] * xc
    return np.stack([a, d], -1), (w * resid * resid).sum(1)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise InvalidInputError(f"the interval level must be between 0 and 1, got {level!r}")
