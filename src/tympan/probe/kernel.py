"""A profile's per-input scoring in one compiled call: every layer's detector distance, its
calibrated z, the output scores' z, the z profile over the stages, the combined statistic,
its conformal p-value and the stage where the divergence enters (what ``combine.py``
describes), for the serving guard and the offline probe alike.

Why compiled (numba): the serving guard scores each request on its own, where numpy's cost
is the number of its calls, not their arithmetic: about 60 calls of a few microseconds
each, more with the caches cold after the model's forward pass (measured on the bench's conv
model: 180 to 270 us a request, for a few thousand multiply-adds). One loop nest over the
request's features does the same arithmetic in one call, without the GIL (``nogil``: the
event loop answers other requests meanwhile). ``Profile.score_features`` calls the same
kernel, so the guard and the probe's reports cannot drift apart.

The distances: layers whose detector is a Mahalanobis distance on mean+std features are
scored here, through the low-rank form of their precision where it has one. A profile
fitted on fewer inputs than a layer has features (30 clips, 320 features) has a shrunk
covariance ``a I + U D U^T`` of rank ``n_fit - 1`` above the ``a I`` floor, so its precision
is ``c I + V diag(e) V^T`` with as few columns: ``z P z = c |z|^2 + |(z V) e^1/2|^2`` reads 29
columns instead of 320 (the dense precisions of the bench's 4 layers are 3.3 MB, which the
forward pass has pushed out of the caches). The form is found from the stored precision (its
eigenvalues: the bulk ``c`` and the rest), checked to rebuild it to 1e-9 of its largest
entry, and used only where it has at most a quarter of the columns; the distances agree
with the dense product to about 1e-12 relative. A precision without that form (a profile
fitted on more inputs than features, as most are) is read as its upper triangle, the
off-diagonal entries doubled: half the memory and the multiply-adds of the full product
(the guard's cost on the bench's conv model with such a profile: 345 -> 202 us a request).
Other layers (k-NN, mean pooling) take their own ``LayerProfile.distance`` in numpy before
the kernel runs. An input with a non-finite feature in a layer is infinitely far from it, as
in ``LayerProfile.distance``.

The pooling (``pool``: a layer's per-channel mean and standard deviation over each input's
valid frames) and the output scores (``output_scores``: energy, MSP and blank ratio of the
output head's logits) are compiled too, for the same reason: torch's pooling was a dozen
calls per group of layers, the output scores a dozen numpy calls on a (1, 45, 17) array (80
to 140 us a request with cold caches). The pooling sums in float64 (torch's summed in the
layer's float32: the features moved by its rounding, about 1e-7 relative, and the bench's
z scores by up to 6e-6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from tympan.errors import InvalidInputError
from tympan.probe.detectors import Mahalanobis

# layout columns per layer: kind, first feature column, width, first parameter, rank
_PRECOMPUTED, _LOW_RANK, _DENSE = 0, 1, 2
# the first columns of ``Scoring.pool_and_score``'s rows (the rest: ``RowColumns``)
STATISTIC, P_VALUE, ENTRY = 0, 1, 2


@dataclass(frozen=True)
class RowColumns:
    """Where ``Scoring.pool_and_score``'s rows hold each input's z profile, output scores' z,
    raw output scores (None without an output profile) and layer distances; its combined
    statistic, p-value and entry stage are the columns ``STATISTIC``, ``P_VALUE`` and
    ``ENTRY`` (``_pool_and_score`` writes them in this order)."""

    stages: slice
    output_z: slice
    raw: slice | None
    distances: slice


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a call per field
class Scored:
    """Per input: (n, layers) distances, (n, k) output z, (n, stages) z profile (the layers'
    z, then the output scores' largest), (n,) combined statistic, p-value and entry stage."""

    distances: np.ndarray
    output_z: np.ndarray
    stages: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    entry: np.ndarray


class Scoring:
    """``scoring(feats, raw)``: pooled features {layer: (n, dims)} of ``layers``
    (``LayerProfile``s, in forward order) and (n, 3) raw output scores -> ``Scored``,
    against ``output`` (an ``OutputProfile`` or None) and the sorted calibration statistics
    (``calibrate``)."""

    def __init__(self, layers: Sequence[Any], output: Any) -> None:
        self.layers = list(layers)
        layout, params, start, offset = [], [], 0, 0
        for lay in self.layers:
            det = lay.detector
            if not (isinstance(det, Mahalanobis) and lay.pooling == "mean+std"):
                layout.append((_PRECOMPUTED, 0, 0, 0, 0))
                continue
            d = lay.dims
            form = low_rank(det.precision)
            if form is None:  # the upper triangle, off-diagonal doubled: half the reads
                upper = np.triu(det.precision) + np.triu(det.precision, 1)
                block = [det.mean, det.scale, upper[np.triu_indices(d)]]
                layout.append((_DENSE, start, d, offset, 0))
            else:
                c, v, e = form
                block = [det.mean, det.scale, [c], v.T.ravel(), e]  # V's columns in turn
                layout.append((_LOW_RANK, start, d, offset, v.shape[1]))
            part = np.concatenate([np.asarray(b, np.float64).ravel() for b in block])
            params.append(part)
            start, offset = start + d, offset + len(part)
        self._layout = np.array(layout, np.int64).reshape(len(self.layers), 5)
        self._params = np.concatenate(params) if params else np.zeros(0)
        self._in_kernel = [lay.name for lay, row in zip(self.layers, layout, strict=True)
                           if row[0] != _PRECOMPUTED]
        self._alone = [i for i, row in enumerate(layout) if row[0] == _PRECOMPUTED]
        self._z = np.array([(lay.z_mean, lay.z_std) for lay in self.layers], np.float64)
        # per output score: column of the raw scores, sign, two-sided, center, mean, std
        self._outputs = np.zeros((0, 6))
        if output is not None:
            cols, sign, two_sided = output.orientation()
            self._outputs = np.column_stack([cols, sign, two_sided, output.center, output.mean,
                                             output.std]).astype(np.float64)
        self._calibration = np.zeros(0)
        k = len(self._outputs)
        at = 3 + len(self.layers) + (k > 0)  # past the three columns and the stages
        self.columns = RowColumns(slice(3, at), slice(at, at + k),
                                  slice(at + k, at + k + 3) if k else None,
                                  slice(at + k + (3 if k else 0), None))

    def calibrate(self, distances: np.ndarray, raw: np.ndarray | None) -> np.ndarray:
        """The combined statistics of the calibration inputs, from their (n_cal, layers)
        distances and raw output scores; kept, sorted, for the p-values."""
        got = self._run(np.zeros((len(distances), 0)), raw,
                        np.ascontiguousarray(distances, np.float64), False)
        self._calibration = np.sort(got.statistic)
        return got.statistic

    def __call__(self, feats: Mapping[str, np.ndarray], raw: np.ndarray | None) -> Scored:
        n = len(feats[self.layers[0].name])
        dist = np.empty((n, len(self.layers)))
        for i in self._alone:
            lay = self.layers[i]
            dist[:, i] = lay.distance(feats[lay.name])
        if self._in_kernel:
            x = np.concatenate([feats[name] for name in self._in_kernel], axis=1,
                               dtype=np.float64)
        else:
            x = np.zeros((n, 0))
        return self._run(x, raw, dist, True)

    def pool_and_score(self, places: tuple[Place, ...], blank: int) -> np.ndarray | None:
        """A batch's unpadded layer outputs pooled and scored in one compiled call
        (``_pool_and_score``), as rows laid out as ``columns`` says (``unpack`` makes them a
        ``Scored``). ``places``: where each output lies in memory (``Place``; the caller holds
        its owner alive), one per layer in order, then the output head's logits with an output
        profile (``blank``: its blank class, -1 for none). None when a layer is scored outside
        the kernel (``_PRECOMPUTED``): pool them and call the scoring instead."""
        if self._alone:
            return None
        wrong, got = _pool_and_score(places, blank, len(self._outputs) > 0, self._layout,
                                     self._params, self._z, self._outputs, self._calibration)
        if wrong >= 0:
            lay = self.layers[wrong]
            raise InvalidInputError(f"layer {lay.name!r} has {place_channels(places[wrong])} "
                                    f"channels but {lay.channels} in the profile: another "
                                    f"architecture")
        return got  # (one array back: each array a compiled call returns costs a microsecond)

    def unpack(self, got: np.ndarray) -> tuple[Scored, np.ndarray | None]:
        """``pool_and_score``'s rows as ``Scored`` and the raw output scores."""
        cols = self.columns
        return (Scored(got[:, cols.distances], got[:, cols.output_z], got[:, cols.stages],
                       got[:, STATISTIC], got[:, P_VALUE], got[:, ENTRY].astype(np.int64)),
                None if cols.raw is None else got[:, cols.raw])

    def _run(self, x: np.ndarray, raw: np.ndarray | None, dist: np.ndarray,
             measure: bool) -> Scored:
        raw = _NO_RAW if raw is None else np.ascontiguousarray(raw, np.float64)
        return Scored(dist, *_score(x, raw, dist, self._layout, self._params, self._z,
                                    self._outputs, self._calibration, measure))


_NO_RAW = np.zeros((0, 3))


@numba.njit(cache=True, nogil=True)
def _score(x, raw, dist, layout, params, zstat, outs, cal, measure):  # pragma: no cover
    n, layers, k = dist.shape[0], layout.shape[0], outs.shape[0]
    stages = np.empty((n, layers + (1 if k > 0 else 0)))
    output_z = np.empty((n, k))
    statistic, p_value = np.empty(n), np.empty(n)
    entry = np.empty(n, np.int64)
    z = np.empty(x.shape[1])
    for b in range(n):
        for i in range(layers):
            kind, start, d, at, rank = layout[i, 0], layout[i, 1], layout[i, 2], \
                layout[i, 3], layout[i, 4]
            if measure and kind != _PRECOMPUTED:
                dist[b, i] = _mahalanobis(x[b, start:start + d], params, kind, d, at, rank,
                                          z)
            zi = (dist[b, i] - zstat[i, 0]) / zstat[i, 1]
            stages[b, i] = np.inf if np.isnan(zi) else zi
        if k > 0:
            top = -np.inf
            for j in range(k):
                v = raw[b, int(outs[j, 0])] * outs[j, 1]
                if outs[j, 2] != 0.0:
                    v = abs(v - outs[j, 3])
                zj = (v - outs[j, 4]) / outs[j, 5]
                zj = zj if np.isfinite(zj) else np.inf
                output_z[b, j] = zj
                top = max(top, zj)
            stages[b, layers] = top
        best, prev, rise, at_best = -np.inf, 0.0, -np.inf, 0
        for s in range(stages.shape[1]):
            value = stages[b, s]
            best = max(best, value)
            floored = min(max(value, 0.0), 1e300)  # a rise from inf to inf is 0, not NaN
            if floored - prev > rise:  # the earliest on a tie
                rise, at_best = floored - prev, s
            prev = floored
        statistic[b], entry[b] = best, at_best
        # (1 + #{calibration >= s}) / (n_cal + 1)
        p_value[b] = (1 + len(cal) - np.searchsorted(cal, best)) / (len(cal) + 1)
    return output_z, stages, statistic, p_value, entry


Place = tuple[int, int, int, int, int]
"""Where a float32 (batch, outer, inner) C-ordered layer output lies: its address, the three
sizes, and 1 when time is the inner axis (channels outer), 0 when the channels are."""


def place_channels(place: Place) -> int:
    """How many channels the output at ``place`` has (``_pool_and_score`` reads it so)."""
    _, _, outer, inner, time_inner = place
    return outer if time_inner else inner


@intrinsic
def _float32_at(typingctx, address):  # pragma: no cover (compiled)
    """The memory at an integer address, as numba.carray takes it."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(address), codegen


# One call from a lone request's layer outputs to its scores: the serving guard's Python
# around a dozen compiled calls (pool each layer, score the head, concatenate, score) cost
# more than their arithmetic (about 2,500 bytecodes a request, run with the caches cold from
# the model's forward pass). The outputs come as addresses (``Place``), read where the forward
# pass left them: a numpy view of each tensor, made right after the pass, cost 4 to 5 times
# as much as reading the address and the layout off it (56 against 12 us a request, bench's
# conv model).
@numba.njit(cache=True, nogil=True)
def _pool_and_score(places, blank, head, layout, params, zstat, outs,
                    cal):  # pragma: no cover
    n, layers = places[0][1], layout.shape[0]
    width = 0
    for i in range(layers):
        width = max(width, layout[i, 1] + layout[i, 2])
        _, _, outer, inner, time_inner = places[i]
        if 2 * (outer if time_inner else inner) != layout[i, 2]:  # (the caller says which)
            return i, np.empty((n, 0))
    x = np.empty((n, width))
    raw = np.zeros((n if head else 0, 3))
    dist = np.empty((n, layers))
    for i in range(layers):
        address, _, outer, inner, time_inner = places[i]
        a = numba.carray(_float32_at(address), (n, outer, inner), np.float32)
        start, d = layout[i, 1], layout[i, 2]
        valid = np.full(n, inner if time_inner else outer, np.int64)
        if time_inner:
            _pool_time_inner(a, valid, x[:, start:start + d])
        else:
            _pool_channels_inner(a, valid, x[:, start:start + d])
    if head:
        address, _, outer, inner, time_inner = places[layers]
        a = numba.carray(_float32_at(address), (n, outer, inner), np.float32)
        if time_inner:
            raw = _output_scores(a.transpose(0, 2, 1), np.full(n, inner, np.int64), blank)
        else:
            raw = _output_scores(a, np.full(n, outer, np.int64), blank)
    output_z, stages, statistic, p_value, entry = _score(x, raw, dist, layout, params, zstat,
                                                         outs, cal, True)
    s, k = stages.shape[1], output_z.shape[1]  # (the layout ``RowColumns`` reads)
    got = np.empty((n, 3 + s + k + (3 if head else 0) + layers))
    got[:, STATISTIC], got[:, P_VALUE], got[:, ENTRY] = statistic, p_value, entry
    got[:, 3:3 + s], got[:, 3 + s:3 + s + k] = stages, output_z
    if head:
        got[:, 3 + s + k:6 + s + k] = raw
    got[:, got.shape[1] - layers:] = dist
    return -1, got


@numba.njit(cache=True, nogil=True)
def _mahalanobis(x, params, kind, d, at, rank, z):  # pragma: no cover
    squares = 0.0
    for j in range(d):
        if not np.isfinite(x[j]):
            return np.inf
        z[j] = (x[j] - params[at + j]) / params[at + d + j]
        squares += z[j] * z[j]
    q = 0.0
    if kind == _LOW_RANK:
        v = at + 2 * d + 1
        e = v + d * rank
        for m in range(rank):
            q += _dot(z, params[v + m * d:v + m * d + d]) ** 2 * params[e + m]
        q += params[at + 2 * d] * squares
    else:  # z P z = sum_i z_i (P_ii z_i + 2 sum_{j>i} P_ij z_j), row i of the triangle
        p = at + 2 * d
        for i in range(d):
            q += _dot(z[i:d], params[p:p + d - i]) * z[i]
            p += d - i
    return np.sqrt(max(q, 0.0))


# Reassociation only (no assumptions about NaN or inf): the sum in several lanes at once, a
# few units in the last place from numpy's order, 3x faster than one chain of additions.
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dot(a, b):  # pragma: no cover
    total = 0.0
    for j in range(len(b)):  # (indices from a range: no check for negative ones to vectorize)
        total += a[j] * b[j]
    return total


def output_scores(logits: np.ndarray, valid: np.ndarray, blank: int) -> np.ndarray:
    """(batch, time, classes) float logits and (batch,) valid frames -> (batch, 3) float64:
    per input, over its valid frames, the mean of ``-logsumexp`` (energy), of the largest
    softmax probability (msp), and the fraction of frames whose best class is ``blank``
    (NaN when ``blank`` is negative: no blank class)."""
    return _output_scores(logits, valid, blank)


@numba.njit(cache=True, nogil=True)
def _output_scores(logits, valid, blank):  # pragma: no cover
    n, classes = logits.shape[0], logits.shape[2]
    out = np.zeros((n, 3))
    for b in range(n):
        frames = valid[b]
        energy, msp, blanks = 0.0, 0.0, 0.0
        for t in range(frames):
            top, best = np.float64(logits[b, t, 0]), 0
            for c in range(1, classes):  # numpy's max and argmax: NaN wins, then the first
                v = np.float64(logits[b, t, c])
                if np.isnan(top):
                    break
                if np.isnan(v) or v > top:
                    top, best = v, c
            total = 0.0
            for c in range(classes):
                total += np.exp(np.float64(logits[b, t, c]) - top)
            energy += -(top + np.log(total))
            msp += 1.0 / total
            if best == blank:
                blanks += 1.0
        out[b, 0], out[b, 1] = energy / frames, msp / frames
        out[b, 2] = blanks / frames if blank >= 0 else np.nan
    return out


def low_rank(precision: np.ndarray, tol: float = 1e-9
             ) -> tuple[float, np.ndarray, np.ndarray] | None:
    """``(c, V, e)`` with ``precision == c I + V diag(e) V^T`` (to ``tol`` of its largest
    entry) and at most a quarter as many columns in ``V`` as rows; else None."""
    w, vecs = np.linalg.eigh(precision)
    c = float(np.median(w))
    scale = float(np.abs(w).max())
    keep = np.abs(w - c) > tol * scale
    if keep.sum() > len(w) // 4:
        return None
    v, e = vecs[:, keep], w[keep] - c
    rebuilt = c * np.eye(len(w)) + (v * e) @ v.T
    if np.abs(rebuilt - precision).max() > tol * float(np.abs(precision).max()):
        return None
    return c, v, e


def in_order(x: np.ndarray) -> tuple[np.ndarray, int]:
    """A (batch, time, channels) view as the C-contiguous array the pooling reads in memory
    order: (batch, channels, time) and 1 when time is the inner axis, else (batch, time,
    channels) and 0 (a copy only when neither reads in order). The loops vectorize so: a
    channels-first output seen as (batch, time, channels) pooled 9x slower in place."""
    if x.strides[1] < x.strides[2]:
        return np.ascontiguousarray(x.transpose(0, 2, 1)), 1
    return np.ascontiguousarray(x), 0


def pool(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A layer's (batch, time, channels) output pooled over each input's ``valid`` frames:
    (batch, 2 * channels) float64, the channels' means, then their standard deviations."""
    out = np.empty((x.shape[0], 2 * x.shape[2]))
    a, time_inner = in_order(x)
    (_pool_time_inner if time_inner else _pool_channels_inner)(a, valid, out)
    return out


# One pass, in float64, reassociated (several lanes at once): each channel's sum and sum of
# squares around a shift (its first valid frame, near its mean, so the variance's
# subtraction loses nothing to cancellation), exact to a few units in the last place of a
# float64 whatever the order (a second pass over the frames for the deviations cost a
# quarter more).
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _pool_time_inner(x, valid, out):  # pragma: no cover
    n, channels = x.shape[0], x.shape[1]
    for b in range(n):
        frames = valid[b]
        for c in range(channels):
            row = x[b, c, :frames]
            shift = np.float64(row[0])
            s1, s2 = 0.0, 0.0
            for t in range(frames):
                dev = row[t] - shift
                s1 += dev
                s2 += dev * dev
            m = s1 / frames
            out[b, c] = shift + m
            var = s2 / frames - m * m
            out[b, channels + c] = np.sqrt(0.0 if var < 0.0 else var)  # (NaN stays NaN)


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _pool_channels_inner(x, valid, out):  # pragma: no cover
    n, channels = x.shape[0], x.shape[2]
    for b in range(n):
        frames = valid[b]
        mean, std = out[b, :channels], out[b, channels:]
        shift = x[b, 0]
        mean[:] = 0.0
        std[:] = 0.0
        for t in range(frames):
            row = x[b, t]
            for c in range(channels):
                dev = row[c] - np.float64(shift[c])
                mean[c] += dev
                std[c] += dev * dev
        for c in range(channels):
            m = mean[c] / frames
            mean[c] = shift[c] + m
            var = std[c] / frames - m * m
            std[c] = np.sqrt(0.0 if var < 0.0 else var)
