"""Padding: which frames of a padded batch are real, and those frames as rows of a layer's
output, so that padded frames never enter a statistic."""

from __future__ import annotations

import torch

from tympan.probe.layers import kept_frames
from tympan.probe.stats import Scratch


class Batch:
    """The lengths of the batch a ``probe.batch()`` block sees, and what follows from them
    for each layer shape (computed once on the host, then reused)."""

    def __init__(self, lengths: torch.Tensor, total: int) -> None:
        self.lengths, self.total = lengths, total
        self._keep: dict[tuple[int, int], list[int] | None] = {}
        self._index: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def keep(self, batch: int, steps: int) -> list[int] | None:
        key = (batch, steps)
        if key not in self._keep:
            self._keep[key] = kept_frames(self.lengths, self.total, batch, steps)
        return self._keep[key]

    def index(self, keep: list[int], steps: int, device: torch.device) -> torch.Tensor:
        """Rows of a (batch * steps, channels) view that are real frames."""
        key = (len(keep), steps, device)
        if key not in self._index:
            mask = torch.arange(steps)[None, :] < torch.tensor(keep)[:, None]
            self._index[key] = mask.reshape(-1).nonzero().squeeze(1).to(device,
                                                                         non_blocking=True)
        return self._index[key]


def time_axis(ndim: int, dim: int) -> int:
    """The time axis of an output with ``ndim`` axes, channels on axis ``dim`` (>= 0): the
    last axis other than batch and channels."""
    return max(a for a in range(1, ndim) if a != dim)


def real_frames(x: torch.Tensor, dim: int, batch: Batch | None,
                buf: Scratch) -> tuple[torch.Tensor, int, bool]:
    """The values of an output that belong to real frames, their channel axis, and
    whether they are a copy (in ``buf``, which the statistics may then reuse).

    Works in the tensor's memory order (a channels-last view of a channels-first buffer
    is read as channels-first, without a copy). With lengths, the real frames of each input
    are copied into the reused buffer in one ``index_select`` or ``cat``, with sizes
    computed on the host (no device sync)."""
    if x.dim() <= 2:
        return x, dim, False
    dim = dim % x.dim()
    time = time_axis(x.dim(), dim)
    order = sorted(range(x.dim()), key=lambda a: -x.stride(a))
    xp = x.permute(order)
    if order[0] != 0 or not xp.is_contiguous():
        xp, order = x.contiguous(), list(range(x.dim()))
    cdim, tdim = order.index(dim), order.index(time)
    keep = None if batch is None else batch.keep(x.shape[0], x.shape[time])
    if keep is None:
        return xp, cdim, False
    shape = list(xp.shape)
    del shape[0]
    shape[tdim - 1] = sum(keep)
    out = buf.like(xp, tuple(shape))
    if xp.dim() == 3 and tdim == 1:  # (batch, time, channels) in memory: rows
        flat = xp.reshape(-1, xp.shape[2])
        torch.index_select(flat, 0, batch.index(keep, xp.shape[1], x.device),  # type: ignore[union-attr]
                           out=out)
    else:
        parts = [xp[b].narrow(tdim - 1, 0, k) for b, k in enumerate(keep) if k]
        if not parts:
            return out, cdim - 1, True
        torch.cat(parts, dim=tdim - 1, out=out)
    return out, cdim - 1, True
