"""Which layers drifted: between two data sets on one model, or between two checkpoints.

Per layer, the pooled per-input features (``features.py``) of the two sides are standardized
with their pooled per-dimension mean and standard deviation, and compared with the squared
maximum mean discrepancy (biased V-statistic) under an RBF kernel whose bandwidth is the
median pairwise squared distance. The p-value comes from ``permutations`` random
relabellings, ``(1 + #{permuted >= observed}) / (permutations + 1)``; Holm's correction runs
across layers. The effect size is the MMD itself (``sqrt`` of MMD², between 0 and sqrt(2)).

- ``drift(model, data_a, data_b)``: two samples of inputs, relabelled freely.
- ``drift_between_checkpoints(model_a, model_b, data)``: the same inputs through two
  models; the samples are paired, so a permutation swaps the two sides within each input.

Each side is capped at ``max_inputs`` inputs (the first ones), so the cost stays at a few
hundred thousand kernel entries per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe.features import collect, iter_batches, require_finite, split_batch
from tympan.probe.pvalues import holm as _holm


@dataclass
class DriftReport:
    """Per-layer drift, in forward order."""

    layers: list[str]
    mmd2: np.ndarray  # (layers,) observed MMD² statistic
    p_values: np.ndarray  # (layers,) permutation p-values
    holm: np.ndarray  # (layers,) Holm-adjusted p-values
    effect: np.ndarray  # (layers,) MMD = sqrt(MMD²), in kernel units
    alpha: float
    n_a: int
    n_b: int

    @property
    def drifted(self) -> np.ndarray:
        """(layers,) bool: Holm-adjusted p <= alpha."""
        return self.holm <= self.alpha

    @property
    def drifted_layers(self) -> list[str]:
        return [n for n, d in zip(self.layers, self.drifted, strict=True) if d]

    def rows(self) -> list[dict[str, Any]]:
        return [{"layer": n, "mmd2": float(s), "p_value": float(p), "holm": float(h),
                 "drifted": bool(h <= self.alpha), "effect": float(e)}
                for n, s, p, h, e in zip(self.layers, self.mmd2, self.p_values, self.holm,
                                         self.effect, strict=True)]


def _kernel(z: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(z)
    sq = (t * t).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * t @ t.T).clamp_min(0)
    n = len(t)
    off = d2[~torch.eye(n, dtype=torch.bool)]
    bandwidth = float(off.median()) if len(off) else 1.0
    return torch.exp(-d2 / max(bandwidth, 1e-12))


def _mmd_test(a: np.ndarray, b: np.ndarray, permutations: int, rng: np.random.Generator,
              paired: bool) -> tuple[float, float]:
    z = np.concatenate([a, b])
    mean, std = z.mean(0), z.std(0)
    z = (z - mean) / np.where(std > 1e-12, std, 1.0)
    k = _kernel(z)
    n_a, n_b = len(a), len(b)
    w = np.concatenate([np.full(n_a, 1.0 / n_a), np.full(n_b, -1.0 / n_b)])
    if paired:  # swap the two sides of each pair
        flip = rng.random((permutations, n_a)) < 0.5
        idx = np.arange(n_a)[None, :].repeat(permutations, 0)
        perm = np.concatenate([np.where(flip, idx + n_a, idx), np.where(flip, idx, idx + n_a)],
                              axis=1)
    else:
        perm = np.argsort(rng.random((permutations, n_a + n_b)), axis=1)
    weights = torch.from_numpy(np.concatenate([w[None, :], np.empty((permutations, len(w)))]))
    # weights[p, perm[p, i]] = w[i]: relabelled sample i carries sample perm[p, i]'s side
    weights[1:].scatter_(1, torch.from_numpy(perm), torch.from_numpy(w).expand(permutations, -1))
    stats = ((weights @ k) * weights).sum(1).numpy()
    observed = float(stats[0])
    p = (1 + int((stats[1:] >= observed - 1e-12 * max(abs(observed), 1.0)).sum())) / (
        permutations + 1)
    return max(observed, 0.0), p


def _check(alpha: float, max_inputs: int, permutations: int) -> None:
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must lie in (0, 1), got {alpha}")
    if max_inputs < 2:
        raise InvalidInputError(f"max_inputs must be at least 2, got {max_inputs}")
    if permutations < 1:
        raise InvalidInputError(f"permutations must be at least 1, got {permutations}")


def _report(names: list[str], fa: dict[str, np.ndarray], fb: dict[str, np.ndarray],
            permutations: int, seed: int, alpha: float, paired: bool) -> DriftReport:
    rng = np.random.default_rng(seed)
    stats, ps = [], []
    for name in names:
        if fa[name].shape[1] != fb[name].shape[1]:
            raise InvalidInputError(f"layer {name!r} has {fa[name].shape[1] // 2} channels on "
                                    f"one side and {fb[name].shape[1] // 2} on the other")
        s, p = _mmd_test(fa[name], fb[name], permutations, rng, paired)
        stats.append(s)
        ps.append(p)
    mmd2, p_values = np.array(stats), np.array(ps)
    return DriftReport(names, mmd2, p_values, _holm(p_values), np.sqrt(mmd2), alpha,
                       len(fa[names[0]]), len(fb[names[0]]))


def drift(model: nn.Module, data_a: Any, data_b: Any, layers: str | list[str] = "auto",
          max_inputs: int = 500, permutations: int = 500, seed: int = 0,
          alpha: float = 0.05) -> DriftReport:
    """Per-layer drift of ``model``'s pooled features between ``data_a`` and ``data_b``
    (each a batch or an iterable of batches of x or (x, lengths))."""
    _check(alpha, max_inputs, permutations)
    names, fa = collect(model, data_a, layers, max_inputs)
    _, fb = collect(model, data_b, names, max_inputs)
    if len(fa[names[0]]) < 2 or len(fb[names[0]]) < 2:
        raise InvalidInputError("drift needs at least 2 inputs on each side")
    require_finite(fa, "data_a")
    require_finite(fb, "data_b")
    return _report(names, fa, fb, permutations, seed, alpha, paired=False)


def drift_between_checkpoints(model_a: nn.Module, model_b: nn.Module, data: Any,
                              layers: str | list[str] = "auto", max_inputs: int = 500,
                              permutations: int = 500, seed: int = 0,
                              alpha: float = 0.05) -> DriftReport:
    """Per-layer drift between two checkpoints of one architecture on the same ``data``."""
    _check(alpha, max_inputs, permutations)
    batches, seen = [], 0
    for batch in iter_batches(data):  # kept, so a one-shot iterator feeds both models
        batches.append(batch)
        seen += split_batch(batch)[0].shape[0]
        if seen >= max_inputs:
            break
    names, fa = collect(model_a, batches, layers, max_inputs)
    _, fb = collect(model_b, batches, names, max_inputs)
    if len(fa[names[0]]) < 2:
        raise InvalidInputError("drift needs at least 2 inputs")
    require_finite(fa, "data (model_a)")
    require_finite(fb, "data (model_b)")
    return _report(names, fa, fb, permutations, seed, alpha, paired=True)
