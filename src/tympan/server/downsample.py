"""Series for charts: a window of a metric, cut to a few thousand points that keep spikes.

A chart 1,500 pixels wide cannot show a million points, but it must still show the one step
where the loss jumped. ``min_max`` cuts the points into buckets of equal count and keeps the
lowest and the highest point of each (in x order), so every extreme survives; zoomed into a
window holding few enough points, ``chart_series`` returns them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tympan.errors import InvalidInputError
from tympan.store.metrics import Series

__all__ = ["ChartSeries", "chart_series", "finite_or_none", "min_max"]

X_AXES = ("step", "time")


@dataclass
class ChartSeries:
    key: str
    x_axis: str
    x: np.ndarray
    y: np.ndarray
    total: int  # points in the window
    count: int  # points in the whole series
    downsampled: bool
    x_min: float | None  # extent of the whole series, in x units
    x_max: float | None

    @property
    def method(self) -> str:
        return "minmax" if self.downsampled else "none"

    def as_json(self) -> dict:
        integral = self.x_axis == "step"
        return {
            "key": self.key, "x_axis": self.x_axis,
            "x": self.x.tolist() if integral else finite_or_none(self.x),
            "y": finite_or_none(self.y),
            "total": self.total, "count": self.count, "downsampled": self.downsampled,
            "method": self.method,
            "x_min": _number(self.x_min, integral), "x_max": _number(self.x_max, integral),
        }


def chart_series(series: Series, x: str = "step", points: int = 1500,
                 start: float | None = None, end: float | None = None,
                 started_at: float | None = None) -> ChartSeries:
    """The points of ``series`` to draw: x (``step``, or ``time`` in seconds since
    ``started_at``, default the first point's time) in order, the ``[start, end]`` window
    only, at most ``points`` of them (``min_max`` when there are more)."""
    if x not in X_AXES:
        raise InvalidInputError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if points < 2:
        raise InvalidInputError(f"points must be at least 2, got {points}")
    if x == "step":
        xs = series.steps
    else:
        origin = started_at if started_at is not None else (
            float(series.times[0]) if len(series) else 0.0)
        xs = series.times - origin
    ys = series.values
    if len(xs) > 1 and not bool(np.all(xs[1:] >= xs[:-1])):
        order = np.argsort(xs, kind="stable")  # e.g. a resumed run that logged steps again
        xs, ys = xs[order], ys[order]
    count = len(xs)
    x_min = float(xs[0]) if count else None
    x_max = float(xs[-1]) if count else None
    lo = 0 if start is None or math.isnan(start) else int(np.searchsorted(xs, start, "left"))
    hi = count if end is None or math.isnan(end) else int(np.searchsorted(xs, end, "right"))
    hi = max(lo, hi)
    xs, ys = xs[lo:hi], ys[lo:hi]
    total = len(xs)
    downsampled = total > points
    if downsampled:
        keep = min_max(ys, points)
        xs, ys = xs[keep], ys[keep]
    return ChartSeries(series.key, x, np.asarray(xs), np.asarray(ys), total, count, downsampled,
                       x_min, x_max)


def min_max(y: np.ndarray, points: int) -> np.ndarray:
    """Indices (sorted) of at most ``points`` points of ``y``: the first and last point, and
    the lowest and highest of each of ``points // 2 - 1`` buckets of equal count. NaNs are
    never picked over numbers; an all-NaN bucket keeps one NaN (a gap)."""
    n = len(y)
    if n <= points:
        return np.arange(n)
    buckets = max(1, points // 2 - 1)
    size = -(-n // buckets)  # ceil
    padded = np.full(buckets * size, np.nan)
    padded[:n] = y
    grid = padded.reshape(buckets, size)
    nan = np.isnan(grid)
    low = np.where(nan, np.inf, grid).argmin(axis=1)
    high = np.where(nan, -np.inf, grid).argmax(axis=1)
    base = np.arange(buckets) * size
    keep = np.concatenate(([0, n - 1], base + low, base + high))
    keep = keep[keep < n]
    return np.unique(keep)


def finite_or_none(values: np.ndarray) -> list[float | None]:
    """A float array as a JSON list, non-finite values as None (gaps in a chart)."""
    out = values.tolist()
    finite = np.isfinite(values)
    if not bool(finite.all()):
        for i in np.flatnonzero(~finite).tolist():
            out[i] = None
    return out


def _number(value: float | None, integral: bool) -> float | int | None:
    if value is None or not math.isfinite(value):
        return None
    return int(value) if integral else value
