"""Main effects and two-way interactions of a full factorial study, paired by seed.

Every cell (one level per factor) of the study runs with the same seeds. The main effect of
factor A at level a is, per seed, the average over every combination of the other factors of
``y(A=a, rest) - y(A=baseline, rest)``; the interaction of (A=a, B=b) is, per seed, the
average over the remaining factors of ``[y(a,b) - y(a0,b)] - [y(a,b0) - y(a0,b0)]``. The
per-seed values then go through :func:`tympan.study.stats.effect_from_differences`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tympan.errors import InvalidInputError
from tympan.study.stats import SIGN_FLIP, Effect, effect_from_differences

Observation = tuple[Mapping[str, str], int, float]


@dataclass(frozen=True)
class FactorialEffect:
    """A main effect or a two-way interaction, with the levels it compares."""

    kind: str  # "main" or "interaction"
    factors: tuple[str, ...]  # ("encoder",) or ("encoder", "front_end")
    levels: tuple[str, ...]  # the non-baseline level(s) compared, same order
    baselines: tuple[str, ...]
    effect: Effect
    diffs: tuple[float, ...] = ()  # the per-seed contrasts the effect was estimated from

    @property
    def name(self) -> str:
        """``encoder=gru`` or ``encoder=gru x front_end=mel``."""
        return " x ".join(f"{f}={lv}" for f, lv in zip(self.factors, self.levels, strict=True))


def _check_design(factors: Mapping[str, list[str]], baselines: Mapping[str, str]) -> None:
    if not factors:
        raise InvalidInputError("a factorial study needs at least one factor")
    for factor, levels in factors.items():
        if len(levels) < 2 or len(set(levels)) != len(levels):
            raise InvalidInputError(
                f"factor {factor!r} needs at least 2 distinct levels, got {list(levels)}"
            )
        if factor not in baselines:
            raise InvalidInputError(f"no baseline level given for factor {factor!r}")
        if baselines[factor] not in levels:
            raise InvalidInputError(
                f"unknown baseline level {baselines[factor]!r} for factor {factor!r}; "
                f"its levels are {list(levels)}"
            )
    extra = set(baselines) - set(factors)
    if extra:
        raise InvalidInputError(f"baselines name unknown factors: {sorted(extra)}")


def _table(
    observations: Iterable[Observation], factors: Mapping[str, list[str]]
) -> tuple[list[int], np.ndarray]:
    """Seeds and an array y[seed, level of factor 1, ..., level of factor k] (NaN = missing)."""
    names = list(factors)
    index = {f: {lv: i for i, lv in enumerate(factors[f])} for f in names}
    cells: dict[tuple[int, tuple[int, ...]], float] = {}
    for levels, seed, value in observations:
        if set(levels) != set(names):
            raise InvalidInputError(
                f"an observation names factors {sorted(levels)}, the study has {sorted(names)}"
            )
        try:
            cell = tuple(index[f][levels[f]] for f in names)
        except KeyError:
            raise InvalidInputError(
                f"an observation has a level not in the study: {dict(levels)}"
            ) from None
        key = (int(seed), cell)
        if key in cells:
            raise InvalidInputError(f"two observations for {dict(levels)} with seed {seed}")
        value = float(value)
        if math.isinf(value):
            raise InvalidInputError(f"infinite value for {dict(levels)} with seed {seed}")
        cells[key] = value
    seeds = sorted({s for s, _ in cells})
    shape = tuple(len(factors[f]) for f in names)
    y = np.full((len(seeds), *shape), np.nan)
    row = {s: i for i, s in enumerate(seeds)}
    for (s, cell), value in cells.items():
        y[(row[s], *cell)] = value
    for cell in itertools.product(*(range(n) for n in shape)):
        if np.isnan(y[(slice(None), *cell)]).all():
            named = {f: factors[f][i] for f, i in zip(names, cell, strict=True)}
            raise InvalidInputError(f"not a full factorial: no result for the cell {named}")
    return seeds, y


def factorial_effects(
    observations: Iterable[Observation],
    factors: dict[str, list[str]],
    baselines: dict[str, str],
    *,
    lower_is_better: bool,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    on_too_few: str = "raise",
    test: str = SIGN_FLIP,
) -> list[FactorialEffect]:
    """Every main effect, then every two-way interaction, of a full factorial study.

    ``observations`` are ``(levels, seed, value)`` with ``levels`` mapping every factor to a
    level; a NaN value is a failed trial. A seed missing a cell that an effect needs is
    dropped from that effect only. An effect left with fewer than 2 seeds raises
    InvalidInputError (``on_too_few="raise"``, the default) or is left out (``"skip"``).
    ``test`` is the paired test of :func:`effect_from_differences`.
    """
    if on_too_few not in ("raise", "skip"):
        raise InvalidInputError(f"on_too_few must be 'raise' or 'skip', got {on_too_few!r}")
    _check_design(factors, baselines)
    seeds, y = _table(observations, factors)
    names = list(factors)
    base = {f: factors[f].index(baselines[f]) for f in names}
    out: list[FactorialEffect] = []

    def add(kind: str, fs: tuple[str, ...], lvs: tuple[str, ...], contrast: np.ndarray) -> None:
        per_cell = contrast.reshape(len(seeds), -1)
        complete = ~np.isnan(per_cell).any(axis=1)
        if complete.sum() < 2:
            if on_too_few == "skip":
                return
            label = " x ".join(f"{f}={lv}" for f, lv in zip(fs, lvs, strict=True))
            raise InvalidInputError(
                f"{kind} effect {label}: only {int(complete.sum())} seed(s) have every cell "
                "it needs (failed trials?); need at least 2"
            )
        diffs = per_cell[complete].mean(axis=1)
        effect = effect_from_differences(diffs, lower_is_better=lower_is_better,
                                         n_boot=n_boot, confidence=confidence, seed=seed,
                                         test=test)
        out.append(FactorialEffect(kind, fs, lvs, tuple(baselines[f] for f in fs), effect,
                                   tuple(float(d) for d in diffs)))

    def at(arr: np.ndarray, factor: str, level: int) -> np.ndarray:
        return np.take(arr, [level], axis=1 + names.index(factor))

    for f in names:
        for i, level in enumerate(factors[f]):
            if i != base[f]:
                add("main", (f,), (level,), at(y, f, i) - at(y, f, base[f]))
    for f, g in itertools.combinations(names, 2):
        for i, j in itertools.product(range(len(factors[f])), range(len(factors[g]))):
            if i == base[f] or j == base[g]:
                continue
            a, a0 = at(y, f, i), at(y, f, base[f])
            contrast = (at(a, g, j) - at(a0, g, j)) - (at(a, g, base[g]) - at(a0, g, base[g]))
            add("interaction", (f, g), (factors[f][i], factors[g][j]), contrast)
    return out
