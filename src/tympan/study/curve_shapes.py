"""The default learning curve: an average over curve shapes, so that intervals stay honest
on curves that are not power laws.

A power law fitted to three or four sizes over-promises on a curve of another shape: the
speaker recipe's accuracy sits at chance, then rises, then saturates (S-shaped in log n), and
a power law extrapolated it with a narrow band that missed every time (docs/benchmarks.md).
So the curve is one of three shapes, in the metric's "worse" direction u, x = n / n0::

    power law     u = a + d * x ** -c
    exponential   u = a + d * exp(-k * (x - 1))
    S-shaped      u = a + d / (1 + (x / m) ** s)      logistic in log n, midpoint m

Each is linear in (a, d) once its shape parameters (c; k; m and s) are fixed, so each family
is a grid of shape parameters and, per grid point, a Bayesian linear regression with a proper
Gaussian prior on (a, d). Its marginal likelihood is exact and carries the Occam factor that
keeps the flexible S-shape from winning by fitting noise. A grid point weighs its marginal
likelihood times the share of its posterior that improves with data (d >= 0) and respects the
metric's bound (an error rate's a >= 0); the three families have equal prior weight. The
prediction at a size is the mixture of the grid points' Gaussian predictions and its interval
the mixture's quantiles: wide where the shapes disagree (the next doubling of an S-curve that
has just started rising), about as narrow as one power law's where they agree.

Two widenings guard against what no shape explains:
- the points scatter more around the best fit than their noise says: the noise is scaled up
  (as the ``weighted`` power law does);
- earlier rounds: refit on the smaller sizes only, forecast each larger size measured, and
  widen by how far outside their own intervals those forecasts fell (conformal in spirit: the
  method's own out-of-sample errors on the data at hand), shrunk toward no widening with two
  pseudo-rounds because four or five sizes give one to three forecasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri, stdtrit

from tympan.study.curves import CurveData, CurveFit

FAMILIES = ("power law", "exponential", "S-shaped")
_MIN_SIZES = 3  # a family needs this many sizes to be weighed at all
_PRIOR_ROUNDS = 2.0  # pseudo-rounds of perfect forecasts the earlier-rounds widening starts from
# Prior weights of the families: equal. Favouring the power law (0.4 or 0.5) made plateaus'
# intervals cover less (72%, 69% in tests/test_curves.py) and power laws' no better.
_PRIOR = np.full(len(FAMILIES), 1 / len(FAMILIES))
_KEEP = 1 - 1e-4  # grid points kept: the heaviest ones holding this share of the weight


@dataclass
class Shapes:
    """Grid points of all families: which family, and the shape parameters of each."""

    family: np.ndarray  # index into FAMILIES
    p: np.ndarray  # c (power law), k (exponential), m (S-shaped)
    q: np.ndarray  # s (S-shaped), unused (0) otherwise

    def g(self, x: np.ndarray) -> np.ndarray:
        """The shape of every grid point at relative sizes ``x``: (points, sizes)."""
        x = np.asarray(x, dtype=float)[None, :]
        p, q = self.p[:, None], self.q[:, None]
        with np.errstate(over="ignore", under="ignore"):
            power = x ** -np.where(self.family[:, None] == 0, p, 1.0)
            expo = np.exp(-np.where(self.family[:, None] == 1, p, 1.0) * (x - 1))
            s_shaped = 1.0 / (1.0 + (x / np.where(self.family[:, None] == 2, p, 1.0)) ** q)
        family = self.family[:, None]
        return np.where(family == 0, power, np.where(family == 1, expo, s_shaped))

    def take(self, keep: np.ndarray) -> Shapes:
        return Shapes(self.family[keep], self.p[keep], self.q[keep])


def _shapes(x_max: float) -> tuple[Shapes, np.ndarray]:
    """The grid of every family for data spanning relative sizes 1 .. ``x_max``, and each
    point's log prior weight (each family's share of _PRIOR, spread evenly over its points)."""
    c = np.exp(np.linspace(math.log(0.02), math.log(3.0), 48))
    # Exponential rates from "barely bends over the data" to "flat after the first size".
    k = np.exp(np.linspace(math.log(0.1), math.log(20.0), 32)) / max(x_max - 1, 1e-9)
    # S-shapes: midpoints from below the smallest size to past twice the largest, steepness
    # from a slow bend to a drop within one doubling.
    m_grid = np.exp(np.linspace(-1.0, math.log(x_max) + 1.0, 40))
    s_grid = np.exp(np.linspace(math.log(0.7), math.log(8.0), 24))
    m, s = (g.ravel() for g in np.meshgrid(m_grid, s_grid))
    family = np.concatenate([np.zeros(c.size), np.ones(k.size), np.full(m.size, 2)])
    shapes = Shapes(family.astype(int), np.concatenate([c, k, m]),
                    np.concatenate([np.zeros(c.size + k.size), s]))
    counts = np.array([c.size, k.size, m.size], dtype=float)
    return shapes, np.log(_PRIOR[shapes.family] / counts[shapes.family])


@dataclass
class _Posterior:
    """Per grid point: the posterior of (a, d), its log weight and its best fit's chi-square."""

    mean: np.ndarray  # (points, 2)
    cov: np.ndarray  # (points, 2, 2)
    log_weight: np.ndarray  # (points,) unnormalised
    chi2: np.ndarray  # (points,) of the data around the posterior mean


def _posterior(shapes: Shapes, log_prior: np.ndarray, x: np.ndarray, u: np.ndarray,
               variances: np.ndarray, floor: float) -> _Posterior:
    """Bayesian linear regression u = a + d * g(x) at every grid point, with a Gaussian prior
    on (a, d) wide enough for any curve through these points (its widths only set the
    Occam factor, the same for every grid point of a family's flexibility)."""
    g = shapes.g(x)  # (points, sizes)
    w = 1.0 / variances
    span = max(float(u.max() - u.min()), float(np.sqrt(variances.max())), 1e-9)
    if math.isfinite(floor):
        # The curve levels off between the bound and where it is now (d >= 0): centre there.
        span = max(span, float(u[-1] - floor))
        prior_mean = np.array([(float(u[-1]) + floor) / 2, 0.0])
    else:
        prior_mean = np.array([float(u[-1]) - span, 0.0])
    prior_prec = np.array([1 / (2 * span) ** 2, 1 / (3 * span) ** 2])
    a00 = prior_prec[0] + w.sum()
    a01 = (w * g).sum(1)
    a11 = prior_prec[1] + (w * g * g).sum(1)
    b0 = prior_prec[0] * prior_mean[0] + (w * u).sum()
    b1 = (w * g * u).sum(1)
    det = a00 * a11 - a01 * a01
    mean = np.stack([(a11 * b0 - a01 * b1) / det, (a00 * b1 - a01 * b0) / det], -1)
    cov = np.stack([np.stack([a11 / det, -a01 / det], -1),
                    np.stack([-a01 / det, a00 / det], -1)], -2)
    # log p(u) up to a constant shared by every grid point:
    # -(u'Wu + mu0'P0 mu0 - b'A^-1 b) / 2 - log|A| / 2
    quad = (w * u * u).sum() + (prior_prec * prior_mean ** 2).sum() - (mean[:, 0] * b0
                                                                       + mean[:, 1] * b1)
    log_ml = -0.5 * quad - 0.5 * np.log(det)
    # Only the part of each posterior that improves with data and respects the bound counts.
    with np.errstate(divide="ignore"):
        log_ml += np.log(ndtr(mean[:, 1] / np.sqrt(cov[:, 1, 1])))
        if math.isfinite(floor):
            log_ml += np.log(ndtr((mean[:, 0] - floor) / np.sqrt(cov[:, 0, 0])))
    resid = u[None, :] - mean[:, :1] - mean[:, 1:] * g
    return _Posterior(mean, cov, log_ml + log_prior, (w * resid * resid).sum(1))


@dataclass
class AveragedFit(CurveFit):
    """A mixture of grid points of the three families, each a Gaussian posterior of (a, d)."""

    shapes: Shapes
    weights: np.ndarray  # (points,), sum 1
    mean: np.ndarray  # (points, 2): a, d in "worse" units
    cov: np.ndarray  # (points, 2, 2)
    widening: float  # variance factor from the earlier rounds' forecasts (1: none)

    @property
    def family_weights(self) -> dict[str, float]:
        """How much of the answer each shape carries."""
        return {name: float(self.weights[self.shapes.family == i].sum())
                for i, name in enumerate(FAMILIES)}

    @property
    def irreducible(self) -> float:
        return self.sign * float(self.weights @ self.mean[:, 0])

    def point(self) -> tuple[float, float, float]:
        """(irreducible level, excess at the smallest size, exponent) in metric units, to set
        beside one power law's: the exponent is the power-law family's weighted mean, NaN when
        that family carries no weight."""
        at_n0 = float(self._band_worse(np.array([self.n0]), 0.5, None)[0][0])
        a = float(self.weights @ self.mean[:, 0])
        power = self.shapes.family == 0
        share = float(self.weights[power].sum())
        c = float(self.weights[power] @ self.shapes.p[power]) / share if share > 0 else math.nan
        return self.sign * a, self.sign * (at_n0 - a), c

    def describe(self, unit_text: str) -> str:
        shares = ", ".join(f"{name} {share:.0%}" for name, share in
                           self.family_weights.items())
        return (f"average over curve shapes ({shares}), levelling off at "
                f"{self.irreducible:.4g}; noise x{self.inflation:.2g}, widened x"
                f"{math.sqrt(self.widening):.2g} by the earlier rounds' forecasts")

    def _components(self, n: np.ndarray, seeds: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Each grid point's predictive mean and standard deviation at sizes ``n``."""
        g = self.shapes.g(n / self.n0)
        mean = self.mean[:, :1] + self.mean[:, 1:] * g
        var = (self.cov[:, :1, 0] + 2 * self.cov[:, :1, 1] * g + self.cov[:, 1:, 1] * g * g)
        if seeds:
            var = var + self.data.seed_variance * self.inflation / seeds
        return mean, np.sqrt(np.clip(var * self.widening, 1e-300, None))

    def _band_worse(self, n: np.ndarray, level: float,
                    seeds: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean, sd = self._components(n, seeds)
        tails = (1 - level) / 2
        # The noise is estimated from a few seeds per size: Student t, not normal, tails.
        dof = max(float((self.data.seeds - 1).sum()), 1.0)
        sd = sd * float(stdtrit(dof, 1 - tails) / ndtri(1 - tails))
        median, low, high = _quantiles(self.weights, mean, sd, np.array([0.5, tails, 1 - tails]))
        return median, low, high

    def _reachable(self, target_worse: float) -> float:
        sd = np.sqrt(self.cov[:, 0, 0] * self.widening)
        return float(self.weights @ ndtr((target_worse - self.mean[:, 0]) / sd))

    def cdf(self, size: float, value_worse: float, extra_variance: float = 0.0) -> float:
        """The mixture's probability that the mean at ``size`` (plus independent noise of
        ``extra_variance``, a measured mean's own) is at most ``value_worse``."""
        mean, sd = self._components(np.array([size]), None)
        total = np.sqrt(sd[:, 0] ** 2 + extra_variance)
        return float(self.weights @ ndtr((value_worse - mean[:, 0]) / total))


def _quantiles(weights: np.ndarray, mean: np.ndarray, sd: np.ndarray,
               probs: np.ndarray) -> np.ndarray:
    """Quantiles ``probs`` of a Gaussian mixture at every size: (probs, sizes), by bisection."""
    lo = np.broadcast_to((mean - 9 * sd).min(0), (probs.size, mean.shape[1])).copy()
    hi = np.broadcast_to((mean + 9 * sd).max(0), (probs.size, mean.shape[1])).copy()
    for _ in range(50):
        mid = (lo + hi) / 2
        cdf = np.einsum("k,pks->ps", weights, ndtr((mid[:, None, :] - mean[None]) / sd[None]))
        below = cdf < probs[:, None]
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def fit_averaged(data: CurveData, max_extrapolation: float) -> AveragedFit:
    """Average the three families over ``data`` (see the module docstring)."""
    fit = _fit(data, max_extrapolation)
    sizes, u = data.sizes, fit.sign * data.means
    squares = []
    for cut in range(_MIN_SIZES, len(sizes)):
        earlier = CurveData(sizes[:cut], data.means[:cut], data.variances[:cut],
                            data.seeds[:cut], data.lower_is_better, data.bound,
                            data.seed_variance)
        forecast = _fit(earlier, max_extrapolation)
        for later in range(cut, len(sizes)):
            share = forecast.cdf(float(sizes[later]), float(u[later]),
                                 float(data.variances[later]) * fit.inflation)
            squares.append(float(ndtri(np.clip(share, 1e-6, 1 - 1e-6))) ** 2)
    fit.widening = max(1.0, (_PRIOR_ROUNDS + sum(squares)) / (_PRIOR_ROUNDS + len(squares)))
    return fit


def _fit(data: CurveData, max_extrapolation: float) -> AveragedFit:
    variances = data.variances
    sign = 1.0 if data.lower_is_better else -1.0
    u = sign * data.means
    floor = -math.inf if data.bound is None else sign * data.bound
    x = data.sizes / data.sizes[0]
    shapes, log_prior = _shapes(float(x[-1]))
    post = _posterior(shapes, log_prior, x, u, variances, floor)
    # Scatter beyond the noise around the best grid point of a family with points to spare.
    params = np.where(shapes.family == 2, 4, 3)
    spare = len(u) - params
    ratios = [post.chi2[(shapes.family == f) & (spare > 0)].min() / spare[shapes.family == f][0]
              for f in range(len(FAMILIES)) if spare[shapes.family == f][0] > 0]
    inflation = max(1.0, min(ratios)) if ratios else 1.0
    if inflation > 1.0:
        post = _posterior(shapes, log_prior, x, u, variances * inflation, floor)
    weights = np.exp(post.log_weight - post.log_weight.max())
    order = np.argsort(-weights)
    total = np.cumsum(weights[order])
    keep = order[: int(np.searchsorted(total, _KEEP * total[-1])) + 1]
    weights = weights[keep] / weights[keep].sum()
    return AveragedFit(method="averaged", data=data, n0=float(data.sizes[0]),
                       max_extrapolation=max_extrapolation, inflation=inflation,
                       shapes=shapes.take(keep), weights=weights, mean=post.mean[keep],
                       cov=post.cov[keep], widening=1.0)
