"""A metric's curve across the runs of a seed group: at each step, the mean of the runs that
logged it and the same Student t interval as the group table (``groups.mean_interval``), so
the band a chart draws at a run's last step is the interval the table shows for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tympan.errors import InvalidInputError
from tympan.records.groups import mean_interval
from tympan.records.record import RunRecord

__all__ = ["SeedBand", "seed_band"]


@dataclass(frozen=True)
class SeedBand:
    key: str
    runs: list[str]  # the runs that logged the metric (none: every list is empty)
    confidence: float
    bucketed: bool  # long series: each point is a span of steps, each run's mean over it
    x: list[float]  # step (or the mean step of a span)
    n: list[int]  # runs with a finite value there
    mean: list[float | None]
    low: list[float | None]  # None below two runs
    high: list[float | None]


def seed_band(records: Sequence[RunRecord], key: str, confidence: float = 0.95,
              points: int = 1000) -> SeedBand:
    """``key``'s mean and interval across ``records`` at every step any of them logged; over
    ``points`` distinct steps, the steps are cut into ``points`` spans of about as many steps,
    each run's values averaged within a span first (a run counts once per point)."""
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must be between 0 and 1, not {confidence}")
    if points < 2:
        raise InvalidInputError(f"points must be at least 2, not {points}")
    having = [r for r in records if key in r.summary]
    if not having:  # a group that never logged it has no curve (runs says so)
        return SeedBand(key, [], confidence, False, [], [], [], [], [])
    series = []
    for record in having:
        history = record.history(key)
        # a step logged twice counts with its last value, as the run's own chart ends on it
        order = np.argsort(history.steps, kind="stable")
        steps, values = history.steps[order], history.values[order]
        last = np.r_[steps[1:] != steps[:-1], True] if len(steps) else np.zeros(0, bool)
        series.append((steps[last], values[last].astype(np.float64)))
    every = np.unique(np.concatenate([s for s, _ in series]))
    bucketed = len(every) > points
    # span i holds the steps edges[i] <= step < edges[i + 1] (each step its own span if few)
    edges = every[np.linspace(0, len(every), points + 1).astype(int)[:-1]] if bucketed else every
    spans = np.searchsorted(edges, every, side="right") - 1
    x = (np.bincount(spans, weights=every, minlength=len(edges))
         / np.bincount(spans, minlength=len(edges))) if bucketed else every.astype(np.float64)
    per_run = []
    for steps, values in series:
        span = np.searchsorted(edges, steps, side="right") - 1
        finite = np.isfinite(values)
        total = np.bincount(span[finite], weights=values[finite], minlength=len(edges))
        count = np.bincount(span[finite], minlength=len(edges))
        with np.errstate(invalid="ignore", divide="ignore"):
            per_run.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    grid = np.vstack(per_run)  # (runs, points)
    out: dict[str, list] = {"n": [], "mean": [], "low": [], "high": []}
    for column in grid.T:
        n, mean, _, low, high = mean_interval([v for v in column if np.isfinite(v)], confidence)
        out["n"].append(n)
        out["mean"].append(mean)
        out["low"].append(low)
        out["high"].append(high)
    return SeedBand(key, [r.id for r in having], confidence, bucketed,
                    [float(v) for v in x], **out)
