"""Attention maps as the probe reads them: asking ``nn.MultiheadAttention`` for its
weights, and summarising a step's maps into the four numbers the alignment rule judges."""

from __future__ import annotations

import math

import torch
from torch import nn

ATTENTION_STATS = ("entropy", "focus", "key_share", "diagonality")


def want_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook: make an ``nn.MultiheadAttention`` return its weights."""
    if len(args) <= 4:  # need_weights is the 5th positional argument of MultiheadAttention
        kwargs = {**kwargs, "need_weights": True}
    return args, kwargs


def attention_tensor(maps: list[torch.Tensor], band: float = 0.1) -> torch.Tensor:
    """Mean over maps of: normalised entropy per query (1 = uniform), focus (mean max
    weight), key share (largest mean mass on one key) and diagonality (mass within
    ``band`` of the diagonal, on positions scaled to [0, 1]); a float64 tensor of 4 on the
    maps' device (in the order of ``ATTENTION_STATS``)."""
    rows = []
    for w in maps:
        w = w.float().reshape(-1, w.shape[-2], w.shape[-1])
        q, k = w.shape[-2], w.shape[-1]
        ent = -(w * w.clamp(min=1e-12).log()).sum(-1) / math.log(k) if k > 1 else w.sum(-1) * 0
        i = torch.arange(q, device=w.device)[:, None] / max(1, q - 1)
        j = torch.arange(k, device=w.device)[None, :] / max(1, k - 1)
        near = ((i - j).abs() <= band).float()
        rows.append(torch.stack([ent.mean(), w.amax(-1).mean(), w.mean(-2).amax(-1).mean(),
                                 (w * near).sum(-1).mean()]))
    return torch.stack(rows).mean(0).to(torch.float64)


def attention_stats(maps: list[torch.Tensor], band: float = 0.1) -> dict[str, float]:
    """``attention_tensor`` as a dict {entropy, focus, key_share, diagonality}."""
    return dict(zip(ATTENTION_STATS, attention_tensor(maps, band).tolist(), strict=True))
