"""Learning-curve fits on synthetic curves with known parameters: recovery, answers, and the
coverage of 80% intervals when extrapolating to the largest size (measured, not assumed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tympan.errors import InvalidInputError
from tympan.study.curves import curve_data, fit_curve

SIZES = 100 * 2.0 ** np.arange(6)  # 1/32 ... 1 of a corpus of 3,200 utterances


def _curve(a: float, d: float, c: float, sizes: np.ndarray = SIZES) -> np.ndarray:
    return a + d * (sizes / sizes[0]) ** -c


def _noisy(rng: np.random.Generator, truth: np.ndarray, sd: float, seeds: int) -> list:
    return [value + rng.normal(0.0, sd, seeds) for value in truth]


def test_recovers_known_parameters_and_answers_the_size_question() -> None:
    rng = np.random.default_rng(0)
    truth = _curve(0.04, 0.5, 0.5)
    fit = fit_curve(curve_data(SIZES, _noisy(rng, truth, 0.002, 3)))
    a, d, c = fit.point()
    assert a == pytest.approx(0.04, abs=0.01)
    assert d == pytest.approx(0.5, abs=0.03)
    assert c == pytest.approx(0.5, abs=0.05)
    # Where the true curve reaches 0.06: 100 * (0.02 / 0.5) ** -2 = 62,500 utterances.
    answer = fit_curve(curve_data(SIZES, _noisy(rng, truth, 0.002, 3)),
                       max_extrapolation=100).size_for(0.06, level=0.95)
    assert answer.verdict == "estimate" and answer.extrapolated
    assert answer.low <= 62_500 <= answer.high
    assert answer.estimate == pytest.approx(62_500, rel=0.5)
    assert fit.size_for(0.2).verdict == "reached"  # already met at 3,200
    unreachable = fit.size_for(0.01)  # below the irreducible level
    assert unreachable.verdict == "unreachable" and math.isinf(unreachable.estimate)
    assert unreachable.reachable < 0.05
    beyond = fit.size_for(0.06)  # 62,500 > 10 x 3,200: more than the curve supports
    assert beyond.verdict == "beyond" and math.isinf(beyond.high)


def test_higher_is_better_metrics_are_fitted_upside_down() -> None:
    rng = np.random.default_rng(1)
    accuracy = 1 - _curve(0.05, 0.4, 0.6)
    fit = fit_curve(curve_data(SIZES, _noisy(rng, accuracy, 0.003, 3), lower_is_better=False))
    a, _, c = fit.point()
    assert a == pytest.approx(0.95, abs=0.02) and c == pytest.approx(0.6, abs=0.1)
    prediction = fit.predict(SIZES[-1] * 4)
    assert prediction.extrapolated and prediction.low < prediction.estimate < prediction.high
    assert prediction.low <= 1 - (0.05 + 0.4 * 128 ** -0.6) <= prediction.high  # 12,800 = 128 x 100
    assert fit.size_for(0.9).verdict in ("reached", "estimate")


def _coverage(method: str, cuts: tuple[int, ...], replicates: int = 120) -> float:
    """How often the 80% interval of the mean at the largest size, fitted on the ``cut``
    smallest sizes (2x to 8x extrapolation), holds the true mean."""
    rng = np.random.default_rng(7)
    hits = []
    for r in range(replicates):
        a, d, c = rng.uniform(0.0, 0.1), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.8)
        truth = _curve(a, d, c)
        values = _noisy(rng, truth, rng.uniform(0.005, 0.05), 3)
        cut = cuts[r % len(cuts)]
        try:
            p = fit_curve(curve_data(SIZES[:cut], values[:cut]), method=method).predict(SIZES[-1])
            hits.append(p.low <= truth[-1] <= p.high)
        except InvalidInputError:
            hits.append(False)
    return float(np.mean(hits))


def test_weighted_intervals_cover_near_their_level_and_better_than_unweighted() -> None:
    weighted = _coverage("weighted", (3, 4, 5))
    unweighted = _coverage("unweighted", (3, 4, 5))
    assert 0.72 <= weighted <= 0.93, weighted
    assert abs(weighted - 0.8) < abs(unweighted - 0.8), (weighted, unweighted)
    # With three sizes the unweighted fit has no degrees of freedom left for its noise.
    assert _coverage("unweighted", (3,), replicates=20) < 0.2


def test_bad_input_is_named() -> None:
    with pytest.raises(InvalidInputError, match="at least 3 data sizes"):
        curve_data([1, 2], [[0.5, 0.4], [0.3, 0.3]])
    with pytest.raises(InvalidInputError, match="positive"):
        curve_data([0, 1, 2], [[0.5], [0.4], [0.3]])
    data = curve_data([1, 2, 4], [[0.5, 0.51], [0.4, 0.41], [0.3, 0.3]])
    with pytest.raises(InvalidInputError, match="unknown curve method"):
        fit_curve(data, method="magic")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        fit_curve(data).predict(8, level=80)
