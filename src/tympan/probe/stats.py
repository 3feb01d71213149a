"""Streaming per-layer statistics that merge exactly across batches and processes.

A ``LayerStats`` holds, per channel: the count of finite values, their sum and sum of
squares taken about a per-channel shift near the mean (so that no precision is lost to
cancellation; ``merge`` combines two with Chan et al.'s parallel formula, so one probe over
batches A then B equals two probes over A and B merged), min/max, the number of nonzero
values and the sum of their signs (which give the exact zero and positive counts) and the
number of saturated values; per layer: NaN and Inf counts; and an optional fixed-bin
``Histogram`` of a few sampled channels (``histogram.py``).

Reductions run on the tensor's own device and the accumulators stay there; only reading
them (``summary()``, ``to_dict()``) moves the small per-channel tensors to the host. Cost
of one ``update`` of a CPU tensor, where reading a scalar back is free: a few full passes
(sum, square, min, max, sign) into a reused scratch buffer; a second, masked pass only for
a batch that holds a NaN or Inf (seen in the sum of squares), and a saturation count only
when min/max reach the threshold. On other devices: one branch-free masked pass that never
waits for the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from tympan.errors import InvalidInputError
from tympan.probe.histogram import Histogram

_F64 = torch.float64


@dataclass
class Saturation:
    """A value ``x`` counts as saturated when ``|x - center| >= threshold``."""

    center: float
    threshold: float


class Scratch:
    """One reused buffer for the temporaries of ``LayerStats.update`` (no allocation, and
    no page faults, per batch)."""

    def __init__(self) -> None:
        self._buf: torch.Tensor | None = None

    def like(self, x: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """An uninitialised contiguous tensor of ``x``'s dtype and device, of its shape or
        ``shape``; valid until the next call."""
        shape = tuple(x.shape) if shape is None else shape
        n = math.prod(shape)
        buf = self._buf
        if buf is None or buf.numel() < n or buf.dtype != x.dtype or buf.device != x.device:
            buf = self._buf = torch.empty(max(n, 1), dtype=x.dtype, device=x.device)
        return buf[:n].view(shape)


_COUNTERS = ("count", "nonzero", "signs", "saturated")  # additive per-channel counters


def _reduce(x: torch.Tensor, op: Any) -> torch.Tensor:
    """``op`` (sum, amin, amax) of a contiguous (before, channels, after) tensor over every
    axis but the channels, innermost axis first (fast, contiguous reductions)."""
    before, _, after = x.shape
    if after == 1:
        return op(x.view(before, -1), 0)
    if before == 1:
        return op(x.view(-1, after), 1)
    return op(op(x, 2), 0)


def _sum_squares(x: torch.Tensor, temp: Any) -> torch.Tensor:
    """Per-channel sum of squares of a contiguous (before, channels, after) tensor: a
    read-only norm along a contiguous axis, or squares into ``temp()`` then a sum."""
    if x.shape[2] > 1:
        if x.shape[0] == 1:
            norms = torch.linalg.vector_norm(x.view(x.shape[1], -1), dim=1)
            return norms * norms
        norms = torch.linalg.vector_norm(x, dim=2)
        return (norms * norms).sum(0)
    return _reduce(torch.mul(x, x, out=temp()), torch.sum)


_SHIFT_RATIO = 256.0  # sums about 0 while mean^2 <= this x variance, in every channel


class LayerStats:
    """Per-channel streaming statistics of one layer's output (or its gradient)."""

    def __init__(self, channels: int, device: torch.device | str = "cpu",
                 saturation: Saturation | None = None) -> None:
        def zeros() -> torch.Tensor:
            return torch.zeros(channels, dtype=_F64, device=device)

        self.channels = channels
        self.saturation = saturation
        self.count = zeros()  # finite values seen, per channel
        self.shift = zeros()  # sums below are of (x - shift): shift is near the mean
        self.sum1 = zeros()
        self.sum2 = zeros()
        self.min = torch.full((channels,), math.inf, dtype=_F64, device=device)
        self.max = torch.full((channels,), -math.inf, dtype=_F64, device=device)
        self.nonzero = zeros()  # finite nonzero values
        self.signs = zeros()  # sum of sign(x) over finite values: positive - negative
        self.saturated = zeros()
        self.nan = torch.zeros((), dtype=_F64, device=device)
        self.inf = torch.zeros((), dtype=_F64, device=device)
        self.hist: Histogram | None = None
        self._sub: torch.Tensor | None = None  # the shift, when the fast path must subtract it
        self._sub_cast: torch.Tensor | None = None  # the same in the input's dtype
        self._centred = False  # whether the shift has been chosen (first update or merge)

    # -- updating -------------------------------------------------------------------------
    def update(self, x: torch.Tensor, dim: int = -1, scratch: Scratch | None = None,
               histogram: bool = True, owned: bool = False) -> None:
        """Add the values of ``x``, whose channels are on axis ``dim`` (every other axis holds
        rows), e.g. the valid frames of a batch as (rows, channels). ``histogram``: also add
        them to ``hist`` (when there is one); ``scratch``: a buffer to reuse for temporaries;
        ``owned``: ``x`` is a buffer nobody reads afterwards, which may be overwritten."""
        x = x.detach()
        dim = dim % x.dim() if x.dim() else 0
        if x.dim() == 0 or x.shape[dim] != self.channels:
            got = x.shape[dim] if x.dim() else 0
            raise InvalidInputError(f"expected {self.channels} channels, got {got}")
        if not x.numel():
            return
        if x.dtype not in (torch.float32, torch.float64):
            x = x.to(torch.float32)  # half precision would lose the sums
        dims = tuple(d for d in range(x.dim()) if d != dim)
        if not dims:  # a single row of channels
            x, dim, dims = x[None], 1, (0,)
        if histogram and self.hist is not None:
            self.hist.update(x.movedim(dim, -1).reshape(-1, self.channels))
        if not (x.device.type == "cpu" and self._centred and self._fast(x, dim, scratch, owned)):
            self._general(x, dim, dims)

    def add_non_finite(self, x: torch.Tensor) -> None:
        """Count the NaN and Inf values of ``x`` (a batch's real frames) and nothing else:
        a batch of a step whose other statistics are not taken (see ``attach(stats_every)``)."""
        self.nan += torch.isnan(x).sum()
        self.inf += torch.isinf(x).sum()

    def _fast(self, x: torch.Tensor, dim: int, scratch: Scratch | None, owned: bool) -> bool:
        """CPU, finite values (else returns False, having changed nothing): reading a scalar
        back is free there, so cheap checks decide which passes are needed. Works in the
        tensor's memory order, viewed as (before, channels, after); writes at most one
        temporary (none when ``owned``: the sign is then taken in place, last)."""
        if not x.is_contiguous():
            x, owned = x.contiguous(), True
        c = self.channels
        x = x.view(math.prod(x.shape[:dim]), c, -1)
        if x.shape[2] == 1 and c < 64 and self._sub is None and scratch is not None:
            # few channels innermost: reductions across rows are slow; copy to (channels, rows)
            x = scratch.like(x, (1, c, x.shape[0])).copy_(x.view(-1, c).t())
            owned = True

        def temp() -> torch.Tensor:
            return scratch.like(x) if scratch is not None else torch.empty_like(x)

        if self._sub is None:
            s1 = _reduce(x, torch.sum)
            s2 = _sum_squares(x, temp)
        else:
            if self._sub_cast is None or self._sub_cast.dtype != x.dtype:
                self._sub_cast = self._sub.to(x.dtype).view(1, c, 1)
            d = torch.sub(x, self._sub_cast, out=temp())
            s1 = _reduce(d, torch.sum)
            s2 = _sum_squares(d, lambda: d)
        if not math.isfinite(float(s2.sum())):  # a NaN/Inf (or an overflow): masked pass
            return False
        lo, hi = _reduce(x, torch.amin), _reduce(x, torch.amax)
        s = self.saturation
        if s is not None and (float(hi.max()) >= s.center + s.threshold
                              or float(lo.min()) <= s.center - s.threshold):
            dev = (x - s.center).abs_() if s.center else x.abs()
            self.saturated += _reduce((dev >= s.threshold).to(x.dtype), torch.sum)
        sign = x.sign_() if owned else torch.sign(x, out=temp())
        signs = _reduce(sign, torch.sum)
        nonzero = _sum_squares(sign, lambda: sign).round_()  # integers: exact after rounding
        self.count += x.numel() // c
        self.sum1 += s1
        self.sum2 += s2
        torch.minimum(self.min, lo, out=self.min)
        torch.maximum(self.max, hi, out=self.max)
        self.signs += signs
        self.nonzero += nonzero
        return True

    def _general(self, x: torch.Tensor, dim: int, dims: tuple[int, ...]) -> None:
        """Any device, any values, no branch on the data (never waits for the device)."""
        finite = torch.isfinite(x)
        n = finite.sum(dims).to(_F64)
        xf = torch.where(finite, x, torch.zeros_like(x)).to(_F64)
        first = not self._centred
        if first:  # centre the sums on the first batch's mean
            self.shift = xf.sum(dims) / n.clamp(min=1)
            self._centred = True
        shape = [1] * x.dim()
        shape[dim] = self.channels
        d = (xf - self.shift.view(shape)) * finite
        self.count += n
        self.sum1 += d.sum(dims)
        self.sum2 += (d * d).sum(dims)
        big = torch.full_like(x, math.inf)
        self.min = torch.minimum(self.min, torch.where(finite, x, big).amin(dims).to(_F64))
        self.max = torch.maximum(self.max, torch.where(finite, x, -big).amax(dims).to(_F64))
        sign = torch.sign(xf)
        self.signs += sign.sum(dims)
        self.nonzero += sign.abs_().sum(dims)
        self.nan += torch.isnan(x).sum()
        self.inf += torch.isinf(x).sum()
        if self.saturation is not None:
            s = self.saturation
            self.saturated += ((x - s.center).abs() >= s.threshold).sum(dims)
        if first and x.device.type == "cpu":
            self.recentre()

    def recentre(self) -> None:
        """Move the shift of the sums to the current mean (exact algebra). On the CPU, the
        fast path then skips subtracting it when every channel's mean is small against its
        spread (mean^2 <= 256 var: float32 sums of squares then lose at most a few 1e-5 of
        the variance to cancellation)."""
        mean, var = self.mean, self.var
        # float32-representable, so that the fast path subtracts exactly this shift
        new = torch.where(self.count > 0, mean, self.shift).float().double()
        self._rebase(new)
        self._sub, self._sub_cast = new, None
        if new.device.type == "cpu":
            small = ((new * new <= _SHIFT_RATIO * torch.nan_to_num(var, nan=0.0))
                     | (self.count == 0))
            if bool(small.all()):
                self._rebase(torch.zeros_like(new))
                self._sub = None
        self._centred = True

    def _rebase(self, shift: torch.Tensor) -> None:
        delta = self.shift - shift  # sums of (x - shift) = sums of ((x - old) + delta)
        self.sum2 = self.sum2 + 2 * delta * self.sum1 + self.count * delta * delta
        self.sum1 = self.sum1 + self.count * delta
        self.shift = shift

    def merge(self, other: LayerStats, histogram: bool = True) -> LayerStats:
        """Fold ``other`` into this (exact: Chan's parallel mean/variance); returns self."""
        if other.channels != self.channels:
            raise InvalidInputError(f"cannot merge statistics of {other.channels} channels "
                                    f"into {self.channels}")
        dev = self.count.device
        n_a, n_b = self.count, other.count.to(dev)
        mean_a = torch.where(n_a > 0, self.mean, 0.0)
        mean_b = torch.where(n_b > 0, other.mean.to(dev), 0.0)
        n = n_a + n_b
        delta = mean_b - mean_a
        mean = mean_a + delta * (n_b / n.clamp(min=1))
        m2 = self.m2 + other.m2.to(dev) + delta * delta * (n_a * n_b / n.clamp(min=1))
        self.count, self.shift, self.sum1, self.sum2 = n, mean, torch.zeros_like(mean), m2
        if self._centred or other._centred:
            self.recentre()
        self.min = torch.minimum(self.min, other.min.to(dev))
        self.max = torch.maximum(self.max, other.max.to(dev))
        for name in ("nonzero", "signs", "saturated", "nan", "inf"):
            setattr(self, name, getattr(self, name) + getattr(other, name).to(dev))
        if other.hist is not None and histogram:
            if self.hist is None:
                self.hist = other.hist.empty_like()
            self.hist.merge(other.hist)
        return self

    def pending(self) -> LayerStats:
        """A fresh accumulator for the batches of one step, centred like this one (same
        shift), so that ``absorb`` adds it back with plain sums. No histogram: the caller
        gives it one on the steps that update histograms."""
        fresh = LayerStats(self.channels, self.count.device, self.saturation)
        fresh.shift, fresh._sub, fresh._sub_cast = self.shift, self._sub, self._sub_cast
        fresh._centred = self._centred
        return fresh

    def absorb(self, other: LayerStats) -> None:
        """Fold in ``other``, made by ``pending()`` from this one. Exactly what updating
        this one with ``other``'s batches would give: taken over when this one is empty,
        plain sums when the shift is the same, else ``merge``."""
        if other.hist is not None:
            if self.hist is None:
                self.hist = other.hist
            else:
                self.hist.merge(other.hist)
        if not self._centred:  # never updated: take other's state as it is
            for key in ("count", "shift", "sum1", "sum2", "min", "max", "nonzero", "signs",
                        "saturated", "nan", "inf", "_sub", "_sub_cast", "_centred"):
                setattr(self, key, getattr(other, key))
            return
        if other.shift is not self.shift or other._sub is not self._sub:
            self.merge(other, histogram=False)
            return
        for key in ("count", "sum1", "sum2", "nonzero", "signs", "saturated", "nan", "inf"):
            getattr(self, key).add_(getattr(other, key))
        torch.minimum(self.min, other.min, out=self.min)
        torch.maximum(self.max, other.max, out=self.max)

    def copy(self) -> LayerStats:
        """An independent copy (histogram included)."""
        return self.empty_like(histogram=False).merge(self)

    def empty_like(self, histogram: bool = True) -> LayerStats:
        """A fresh accumulator with the same channels, saturation rule and histogram edges."""
        fresh = LayerStats(self.channels, self.count.device, self.saturation)
        if self.hist is not None and histogram:
            fresh.hist = self.hist.empty_like()
        return fresh

    def reset(self) -> None:
        """Forget every value seen, keeping the histogram edges; the sums stay centred near
        the mean seen so far, so the next batches take the fast path straight away."""
        if bool(self._centred):
            self.recentre()
        sub, centred, hist = self._sub, self._centred, self.hist
        shift = self.shift
        self.__init__(self.channels, self.count.device, self.saturation)  # type: ignore[misc]
        self.shift, self._sub, self._centred = shift, sub, centred
        if hist is not None:
            self.hist = hist.empty_like()

    # -- reading --------------------------------------------------------------------------
    @property
    def mean(self) -> torch.Tensor:
        """Mean per channel (NaN for a channel with no finite value)."""
        return torch.where(self.count > 0, self.shift + self.sum1 / self.count.clamp(min=1),
                           torch.full_like(self.sum1, math.nan))

    @property
    def m2(self) -> torch.Tensor:
        """Sum of squared deviations from the mean, per channel."""
        safe = self.count.clamp(min=1)
        return (self.sum2 - self.sum1 * self.sum1 / safe).clamp(min=0)

    @property
    def var(self) -> torch.Tensor:
        """Population variance per channel (NaN for a channel with no finite value)."""
        return torch.where(self.count > 0, self.m2 / self.count.clamp(min=1),
                           torch.full_like(self.sum1, math.nan))

    @property
    def zeros(self) -> torch.Tensor:
        """Exact zeros per channel."""
        return self.count - self.nonzero

    @property
    def positive(self) -> torch.Tensor:
        """Values > 0 per channel."""
        return (self.nonzero + self.signs) / 2

    def counters(self) -> dict[str, torch.Tensor]:
        """The additive per-channel counters (count, zeros, positive, saturated)."""
        return {"count": self.count, "zeros": self.zeros, "positive": self.positive,
                "saturated": self.saturated}

    def summary(self) -> dict[str, float]:
        """The scalars logged as ``probe/{layer}/{stat}``."""
        seen = self.count > 0
        values = self.count.sum()
        total = (values + self.nan + self.inf).clamp(min=1)
        nan = torch.tensor(math.nan, dtype=_F64, device=self.count.device)
        k = seen.sum()
        out = torch.stack([
            torch.where(k > 0, torch.where(seen, self.mean, 0.0).sum() / k.clamp(min=1), nan),
            torch.where(k > 0, torch.where(seen, self.var, 0.0).sqrt().sum() / k.clamp(min=1),
                        nan),
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
