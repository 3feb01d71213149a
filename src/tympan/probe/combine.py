"""One anomaly score from every layer and the model's own output, and where it enters.

A layer's distance and an output score (energy, MSP, CTC blank ratio) live on different
scales, so each is first put in units of its own spread on the *fit* part of the reference:
``z = (s - mean) / std``. For a layer the mean and std come from out-of-fold distances (the
detector fitted on four fifths of the fit inputs scores the fifth left out, for each fifth),
because a detector's distances on its own fit inputs are too small. The combined statistic
is the largest z of any layer or output score: it is as strong as the best single component
on a shift that shows in one place (a channel shift in the front end, an unknown vocabulary
in the output's confidence, a confidently wrong input deep in the encoder) and needs no
shifted data to weight. Everything it uses is fixed before the calibration inputs are
scored, so its conformal p-value against the calibration inputs' combined statistics is
exactly valid.

Where the divergence *enters*: along the stages (the layers in forward order, then the
output scores as one stage, their largest z), the stage whose z (floored at 0) rises most
over the previous one's. A channel shift jumps at the front end and stays; a content shift
climbs late.

This module fits what the scores are put in units of; ``kernel.py`` computes each input's z,
its stage profile, the combined statistic, its p-value and the entry stage, in one compiled
call for the serving guard and the probe's reports alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tympan.probe.features import OUTPUT_SCORES, OutputHead

OUTPUT_STAGE = "output"  # the stage name of the output scores in a z profile
FOLDS = 5


@dataclass
class OutputProfile:
    """The output head's scores on the fit part: orientation and scale of each."""

    head: OutputHead
    names: list[str]  # the scores used: energy, msp, and blank_ratio with a blank
    center: np.ndarray  # (k,) median on the fit part (blank ratio is scored two-sided)
    mean: np.ndarray  # (k,) mean of the oriented scores on the fit part
    std: np.ndarray  # (k,) their standard deviation (floored)

    @classmethod
    def fit(cls, head: OutputHead, raw: np.ndarray) -> OutputProfile:
        names = [n for n in OUTPUT_SCORES if n != "blank_ratio" or head.blank is not None]
        cols = raw[:, [OUTPUT_SCORES.index(n) for n in names]]
        center = np.median(cols, axis=0)
        prof = cls(head, names, center, np.zeros(len(names)), np.ones(len(names)))
        oriented = prof.oriented(raw)
        prof.mean, prof.std = oriented.mean(0), _floor(oriented.std(0))
        return prof

    def orientation(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Per score used: its column of the raw scores, its sign and whether it is scored
        two-sided (as its distance from ``center``): what ``oriented`` applies, and what the
        compiled scoring (``kernel.Scoring``) reads."""
        cols = [OUTPUT_SCORES.index(n) for n in self.names]
        sign = np.array([-1.0 if n == "msp" else 1.0 for n in self.names])
        two_sided = np.array([n == "blank_ratio" for n in self.names])
        return cols, sign, two_sided

    def oriented(self, raw: np.ndarray) -> np.ndarray:
        """(n, 3) raw scores -> (n, k), higher = more anomalous: energy as is, MSP negated,
        blank ratio as its distance from the fit part's median."""
        cols, sign, two_sided = self.orientation()
        out = raw[:, cols] * sign
        out[:, two_sided] = np.abs(out[:, two_sided] - self.center[two_sided])
        return out

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.head.layer, "blank": self.head.blank, "names": self.names,
                "center": self.center.tolist(), "mean": self.mean.tolist(),
                "std": self.std.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputProfile:
        return cls(OutputHead(str(data["layer"]), data["blank"]), list(data["names"]),
                   np.asarray(data["center"], float), np.asarray(data["mean"], float),
                   np.asarray(data["std"], float))


def _floor(std: np.ndarray) -> np.ndarray:
    std = np.asarray(std, float)
    return np.where(std > 1e-12, std, 1.0)


def out_of_fold(distances_of: Any, feats: np.ndarray, seed: int) -> tuple[float, float]:
    """Mean and std of out-of-fold distances: ``distances_of(train, test)`` fits on ``train``
    rows and returns the distances of ``test`` rows."""
    order = np.random.default_rng(seed).permutation(len(feats))
    folds = np.array_split(order, min(FOLDS, len(feats)))
    held = np.concatenate([distances_of(feats[np.setdiff1d(order, fold)], feats[fold])
                           for fold in folds])
    held = held[np.isfinite(held)]
    return float(held.mean()), float(_floor(held.std()))
