"""Fixed-bin histograms of a few sampled channels of a layer, which merge exactly across
batches and processes when their edges match."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tympan.errors import InvalidInputError

_F64 = torch.float64


def sample_channels(channels: int, k: int) -> list[int]:
    """``k`` evenly spaced channel indices (deterministic), all of them when ``k >= channels``."""
    if k <= 0:
        return []
    if k >= channels:
        return list(range(channels))
    return sorted({round(i * (channels - 1) / (k - 1)) for i in range(k)} if k > 1 else {0})


@dataclass(frozen=True)
class HistogramSettings:
    """What ``attach()`` asked for: histograms of ``channels`` sampled channels per layer,
    ``bins`` bins, edges from ``edges`` or else from the layer's first batch."""

    channels: int
    bins: int
    edges: tuple[float, float] | None

    def first(self, rows: torch.Tensor, dim: int, channels: int) -> Histogram:
        """The empty histogram of a layer whose first batch is ``rows`` (channels on ``dim``)."""
        flat = rows.movedim(dim, -1).reshape(-1, channels)
        return Histogram.from_first_batch(flat, sample_channels(channels, self.channels),
                                          self.bins, self.edges)


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
