"""Streaming per-layer statistics that merge exactly across batches and processes.

A ``LayerStats`` holds, per channel: the count of finite values, their mean and sum of
squared deviations (merged with Chan et al.'s parallel formula, so one probe over batches
A then B equals two probes over A and B merged), min/max, the number of exact zeros, of
positive values and of saturated values; per layer: NaN and Inf counts; and an optional
fixed-bin ``Histogram`` of a few sampled channels. Reductions run on the tensor's own
device; only ``to_dict()`` moves the small per-channel tensors to the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tympan.errors import InvalidInputError

_F64 = torch.float64


@dataclass
class Saturation:
    """A value ``x`` counts as saturated when ``|x - center| >= threshold``."""

    center: float
    threshold: float


def sample_channels(channels: int, k: int) -> list[int]:
    """``k`` evenly spaced channel indices (deterministic), all of them when ``k >= channels``."""
    if k <= 0:
        return []
    if k >= channels:
        return list(range(channels))
    return sorted({round(i * (channels - 1) / (k - 1)) for i in range(k)} if k > 1 else {0})


@dataclass
class Histogram:
    """Counts of ``bins`` equal-width bins on [lo, hi) per sampled channel, plus an underflow
    bin (first column) and an overflow bin (last column). Merges exactly when edges match."""

    channels: list[int]
    lo: torch.Tensor  # (k,)
    hi: torch.Tensor  # (k,)
    bins: int
    counts: torch.Tensor  # (k, bins + 2), int64

    @classmethod
    def from_first_batch(cls, x: torch.Tensor, channels: list[int], bins: int,
                         value_range: tuple[float, float] | None = None) -> Histogram:
        """Edges fixed from a robust range (0.1%..99.9% quantiles, widened by 10%) of the
        sampled channels of ``x`` (rows, channels), or from ``value_range`` when given."""
        k = len(channels)
        if value_range is not None:
            lo = torch.full((k,), float(value_range[0]), dtype=_F64, device=x.device)
            hi = torch.full((k,), float(value_range[1]), dtype=_F64, device=x.device)
        else:
            sub = x[:, channels].to(_F64)
            sub = sub[:4096]  # a cap keeps quantile cheap; edges need only a rough range
            sub = torch.where(torch.isfinite(sub), sub, torch.zeros_like(sub))
            q = torch.quantile(sub, torch.tensor([0.001, 0.999], dtype=_F64,
                                                 device=x.device), dim=0)
            lo, hi = q[0], q[1]
            pad = (hi - lo) * 0.1 + 1e-3
            lo, hi = lo - pad, hi + pad
        counts = torch.zeros((k, bins + 2), dtype=torch.int64, device=x.device)
        return cls(list(channels), lo, hi, bins, counts)

    def empty_like(self) -> Histogram:
        return Histogram(self.channels, self.lo, self.hi, self.bins,
                         torch.zeros_like(self.counts))

    def update(self, x: torch.Tensor) -> None:
        """Add the rows of ``x`` (rows, channels); non-finite values are skipped."""
        k = len(self.channels)
        if not k or not x.shape[0]:
            return
        sub = x[:, self.channels].to(_F64)
        pos = (sub - self.lo) / (self.hi - self.lo) * self.bins
        idx = torch.floor(pos).clamp_(-1, self.bins).to(torch.int64) + 1
        idx = idx + torch.arange(k, device=x.device) * (self.bins + 2)
        idx = idx[torch.isfinite(sub)]
        self.counts += torch.bincount(idx, minlength=k * (self.bins + 2)).view(k, -1)

    def merge(self, other: Histogram) -> None:
        if (self.channels != other.channels or self.bins != other.bins
                or not torch.equal(self.lo, other.lo.to(self.lo.device))
                or not torch.equal(self.hi, other.hi.to(self.hi.device))):
            raise InvalidInputError(
                "cannot merge histograms with different channels or edges; give every "
                "process the same attach(histogram_range=(lo, hi)) so their edges match")
        self.counts += other.counts.to(self.counts.device)

    def to_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "bins": self.bins, "lo": self.lo.tolist(),
                "hi": self.hi.tolist(), "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Histogram:
        return cls(list(d["channels"]), torch.tensor(d["lo"], dtype=_F64),
                   torch.tensor(d["hi"], dtype=_F64), int(d["bins"]),
                   torch.tensor(d["counts"], dtype=torch.int64))


class LayerStats:
    """Per-channel streaming statistics of one layer's output (or its gradient)."""

    def __init__(self, channels: int, device: torch.device | str = "cpu",
                 saturation: Saturation | None = None) -> None:
        def zeros() -> torch.Tensor:
            return torch.zeros(channels, dtype=_F64, device=device)

        self.channels = channels
        self.saturation = saturation
        self.count = zeros()  # finite values seen, per channel
        self.mean = zeros()
        self.m2 = zeros()  # sum of squared deviations from the mean
        self.min = torch.full((channels,), math.inf, dtype=_F64, device=device)
        self.max = torch.full((channels,), -math.inf, dtype=_F64, device=device)
        self.zeros = zeros()
        self.positive = zeros()
        self.saturated = zeros()
        self.nan = torch.zeros((), dtype=_F64, device=device)
        self.inf = torch.zeros((), dtype=_F64, device=device)
        self.hist: Histogram | None = None

    # -- updating -------------------------------------------------------------------------
    def update(self, x: torch.Tensor) -> None:
        """Add the rows of ``x`` (rows, channels), e.g. the valid frames of a batch."""
        x = x.detach()
        if x.shape[-1] != self.channels:
            raise InvalidInputError(f"expected {self.channels} channels, got {x.shape[-1]}")
        if not x.shape[0]:
            return
        finite = torch.isfinite(x)
        bad = int(x.numel() - finite.sum())  # one small sync: the branch below needs it
        if bad:
            self.nan += torch.isnan(x).sum()
            self.inf += torch.isinf(x).sum()
            n = finite.sum(0).to(_F64)
            xf = torch.where(finite, x, torch.zeros_like(x))
            mean = xf.sum(0).to(_F64) / n.clamp(min=1)
            m2 = ((xf.to(_F64) - mean) ** 2 * finite).sum(0)
            lo = torch.where(finite, x, torch.full_like(x, math.inf)).amin(0)
            hi = torch.where(finite, x, torch.full_like(x, -math.inf)).amax(0)
        else:
            var, mean = torch.var_mean(x, dim=0, correction=0)
            n = torch.full((self.channels,), float(x.shape[0]), dtype=_F64, device=x.device)
            mean = mean.to(_F64)
            m2 = var.to(_F64) * n
            lo, hi = torch.aminmax(x, dim=0)
            xf = x
        self._combine(n, mean, m2)
        self.min = torch.minimum(self.min, lo.to(_F64))
        self.max = torch.maximum(self.max, hi.to(_F64))
        self.zeros += (xf == 0).logical_and_(finite).sum(0) if bad else (x == 0).sum(0)
        self.positive += (x > 0).sum(0)
        if self.saturation is not None:
            s = self.saturation
            dev = (x - s.center).abs_() if s.center else x.abs()
            self.saturated += (dev >= s.threshold).sum(0)
        if self.hist is not None:
            self.hist.update(x)

    def _combine(self, n: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor) -> None:
        total = self.count + n
        safe = total.clamp(min=1)
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / safe)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * n / safe)
        self.count = total

    def merge(self, other: LayerStats, histogram: bool = True) -> LayerStats:
        """Fold ``other`` into this (exact: Chan's parallel mean/variance); returns self."""
        if other.channels != self.channels:
            raise InvalidInputError(f"cannot merge statistics of {other.channels} channels "
                                    f"into {self.channels}")
        dev = self.mean.device
        self._combine(other.count.to(dev), other.mean.to(dev), other.m2.to(dev))
        self.min = torch.minimum(self.min, other.min.to(dev))
        self.max = torch.maximum(self.max, other.max.to(dev))
        for name in ("zeros", "positive", "saturated", "nan", "inf"):
            setattr(self, name, getattr(self, name) + getattr(other, name).to(dev))
        if other.hist is not None and histogram:
            if self.hist is None:
                self.hist = other.hist.empty_like()
            self.hist.merge(other.hist)
        return self

    def empty_like(self) -> LayerStats:
        """A fresh accumulator with the same channels, saturation rule and histogram edges."""
        fresh = LayerStats(self.channels, self.mean.device, self.saturation)
        if self.hist is not None:
            fresh.hist = self.hist.empty_like()
        return fresh

    # -- reading --------------------------------------------------------------------------
    @property
    def var(self) -> torch.Tensor:
        """Population variance per channel (NaN for a channel with no finite value)."""
        return torch.where(self.count > 0, self.m2 / self.count.clamp(min=1),
                           torch.full_like(self.m2, math.nan))

    def summary(self) -> dict[str, float]:
        """The scalars logged as ``probe/{layer}/{stat}``."""
        seen = self.count > 0
        values = self.count.sum()
        total = (values + self.nan + self.inf).clamp(min=1)
        std = self.var.sqrt()
        out = torch.stack([
            self.mean[seen].mean() if seen.any() else torch.tensor(math.nan, dtype=_F64),
            std[seen].mean() if seen.any() else torch.tensor(math.nan, dtype=_F64),
            self.min.min(), self.max.max(),
            self.zeros.sum() / total, self.saturated.sum() / total, self.nan, self.inf,
        ]).tolist()
        names = ("mean", "std", "min", "max", "zero_frac", "saturated_frac", "nan", "inf")
        return dict(zip(names, out, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, full per-channel statistics (non-finite floats become None)."""
        def clean(t: torch.Tensor) -> Any:
            values = t.cpu().tolist()
            if isinstance(values, float):
                return values if math.isfinite(values) else None
            return [v if math.isfinite(v) else None for v in values]

        return {
            "channels": self.channels, "count": clean(self.count), "mean": clean(self.mean),
            "var": clean(self.var), "min": clean(self.min), "max": clean(self.max),
            "zeros": clean(self.zeros), "positive": clean(self.positive),
            "saturated": clean(self.saturated), "nan": clean(self.nan), "inf": clean(self.inf),
            "saturation": None if self.saturation is None else
            {"center": self.saturation.center, "threshold": self.saturation.threshold},
            "histogram": None if self.hist is None else self.hist.to_dict(),
        }
