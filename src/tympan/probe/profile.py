"""Reference profile of a model's layers, and per-input anomaly scoring against it.

``fit(model, reference_loader)`` pools per-input features per layer (``features.py``), splits
the reference inputs (seeded) into a fit part and a calibration part, and per layer keeps:

- a detector fitted on the fit part (``detectors.py``; default: Mahalanobis distance under a
  Ledoit-Wolf shrinkage covariance of the standardized mean+std features, or ``knn``);
- channel statistics (input-weighted mean and standard deviation of each channel);
- the calibration scores: the detector's distance of each held-out calibration input.

``Profile.score(model, batch)`` gives each input its per-layer distances, per-layer conformal
p-values ``(1 + #{calibration scores >= s}) / (n_cal + 1)``, one combined p-value, the
step-down adjusted per-layer p-values, and the first layer (in forward order) whose adjusted
p-value is <= alpha.

The combined p-value is a *joint conformal min-p*: the statistic is the smallest per-layer
conformal p-value, ranked against the same statistic of each calibration input, computed
among the calibration inputs plus the test input. The statistic is a symmetric function of
the n_cal + 1 points, so the p-value is exactly valid when the input comes from the reference
distribution (P(p <= alpha) <= alpha) whatever the dependence between layers, and it reaches
1 / (n_cal + 1) where Bonferroni would stop at layers / (n_cal + 1).

Localisation is Westfall and Young's step-down min-P over layers with the same conformal
calibration: layers sorted by p-value, the k-th is tested with the joint min-p over the
layers from the k-th on, and adjusted p-values are made monotone. That controls the
family-wise error over layers and, unlike Holm, accounts for the layers' dependence: its
first step *is* the combined p-value, so every input flagged at alpha has a first divergent
layer. Holm's adjustment is still reported (``holm``), for comparison.

``AnomalyReport.anomaly_score`` orders inputs for ranking (AUROC): by the combined p-value,
ties (e.g. at the floor 1 / (n_cal + 1)) broken by the largest per-layer distance in units of
that layer's calibration scores (``(s - mean) / std``).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe.detectors import LayerDetector, detector_class
from tympan.probe.features import collect, require_finite
from tympan.records.probe import PROFILE

FORMAT = "tympan.probe.profile/2"
POOLINGS = ("mean+std", "mean")
_CHUNK = 256  # inputs scored at a time: the step-down works on (chunk, layers, n_cal) arrays


@dataclass
class LayerProfile:
    """What the profile knows about one layer."""

    name: str
    module: str  # class name of the module, to tell another architecture apart
    channels: int
    pooling: str  # "mean+std": per-channel means then stds (2 * channels); "mean": means
    detector: LayerDetector
    channel_mean: np.ndarray  # (channels,) mean activation of each channel
    channel_std: np.ndarray  # (channels,) standard deviation of each channel
    calibration: np.ndarray  # (n_cal,) detector distances of the calibration inputs

    @property
    def dims(self) -> int:
        """Width of the pooled features ``collect`` gives for this layer."""
        return 2 * self.channels

    def distance(self, feats: np.ndarray) -> np.ndarray:
        """(n, 2 * channels) pooled features -> (n,) distances (inf where non-finite)."""
        finite = np.isfinite(feats).all(axis=1)
        out = np.full(len(feats), np.inf)
        if finite.any():
            used = feats[finite] if self.pooling == "mean+std" else \
                feats[finite][:, :self.channels]
            out[finite] = self.detector.distance(used)
        return out


def _fit_layer(name: str, module: str, fit: np.ndarray, cal: np.ndarray, pooling: str,
               kind: str, options: Mapping[str, Any]) -> LayerProfile:
    c = fit.shape[1] // 2
    used = fit if pooling == "mean+std" else fit[:, :c]
    means, stds = fit[:, :c], fit[:, c:]
    channel_std = np.sqrt((stds**2).mean(0) + means.var(0))  # total variance over inputs
    layer = LayerProfile(name, module, c, pooling, detector_class(kind).fit(used, **options),
                         means.mean(0), channel_std, np.empty(0))
    layer.calibration = layer.distance(cal)
    return layer


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis."""
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, -1) * (m - np.arange(m))
    ranked = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    out = np.empty_like(ranked)
    np.put_along_axis(out, order, ranked, -1)
    return out


def _step_down_min_p(p_ranks: np.ndarray, cal_ranks: np.ndarray) -> np.ndarray:
    """Westfall-Young step-down min-P adjusted p-values, conformal version.

    ``p_ranks`` (n, L): each test input's per-layer rank among calibration + itself, i.e.
    ``1 + #{calibration scores >= its score}``; ``cal_ranks`` (n, L, n_cal): each calibration
    input's per-layer rank among the calibration inputs plus that test input. Layer subsets
    S_k = the layers from the test's k-th smallest p-value on; the adjusted p of the k-th is
    the max over j <= k of (1 + #{calibration i: min over S_j of its rank <= the test's})
    / (n_cal + 1).
    """
    n_cal = cal_ranks.shape[-1]
    order = np.argsort(p_ranks, axis=1, kind="stable")  # smallest p (rank) first
    sorted_ranks = np.take_along_axis(p_ranks, order, 1)
    cal_sorted = np.take_along_axis(cal_ranks, order[:, :, None], 1)
    tail_min = np.minimum.accumulate(cal_sorted[:, ::-1], axis=1)[:, ::-1]  # min over S_k
    adjusted = (1 + (tail_min <= sorted_ranks[:, :, None]).sum(-1)) / (n_cal + 1)
    adjusted = np.maximum.accumulate(adjusted, axis=1)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, 1)
    return out


@dataclass
class AnomalyReport:
    """Per-input anomaly scores. Arrays are indexed [input] or [input, layer]."""

    layers: list[str]  # forward order
    scores: np.ndarray  # (n, layers) detector distance to the reference
    p_values: np.ndarray  # (n, layers) per-layer conformal p-values
    holm: np.ndarray  # (n, layers) Holm-adjusted per-layer p-values (for comparison)
    p_value: np.ndarray  # (n,) combined anomaly p-value (joint conformal min-p)
    alpha: float  # level first_divergent_layer was named at
    first_divergent_layer: list[str | None] = field(default_factory=list)
    adjusted: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (n, layers)
    # step-down min-P adjusted per-layer p-values; adjusted.min(1) == p_value
    anomaly_score: np.ndarray = field(default_factory=lambda: np.empty(0))  # (n,) ranking

    def __len__(self) -> int:
        return len(self.p_value)

    def flagged(self, alpha: float | None = None) -> np.ndarray:
        """(n,) bool: inputs whose combined p-value is <= alpha (default: the report's)."""
        return self.p_value <= (self.alpha if alpha is None else alpha)

    def divergent_layers(self, alpha: float | None = None) -> list[str | None]:
        """First layer per input whose step-down adjusted p <= alpha, in forward order."""
        sig = self.adjusted <= (self.alpha if alpha is None else alpha)
        return [self.layers[int(np.argmax(row))] if row.any() else None for row in sig]


class Profile:
    """A fitted reference profile: one ``LayerProfile`` per watched layer, in forward order."""

    def __init__(self, layers: list[LayerProfile], meta: dict[str, Any]) -> None:
        self.layers = layers
        self.meta = meta
        cal = np.stack([lay.calibration for lay in layers])  # (L, n_cal)
        # Calibration ranks per layer: #{calibration scores >= own score}, own included.
        self._cal_ranks = np.stack([_ranks_ge(c) for c in cal])
        finite = np.where(np.isfinite(cal), cal, np.nan)
        self._cal_mean = np.nanmean(finite, axis=1)
        std = np.nanstd(finite, axis=1)
        self._cal_std = np.where(std > 0, std, 1.0)

    @property
    def layer_names(self) -> list[str]:
        return [lay.name for lay in self.layers]

    @property
    def n_calibration(self) -> int:
        return len(self.layers[0].calibration)

    @property
    def detector(self) -> str:
        return str(self.meta["detector"])

    def __repr__(self) -> str:
        return (f"Profile({len(self.layers)} layers, {self.detector} on {self.meta['pooling']}"
                f" features, {self.meta['n_fit']} fit + {self.n_calibration} calibration "
                f"inputs)")

    # -- scoring ----------------------------------------------------------------------------

    def check_model(self, model: nn.Module) -> None:
        """Raise unless ``model`` has this profile's layers, of the same kinds."""
        modules = dict(model.named_modules())
        missing = [lay.name for lay in self.layers if lay.name not in modules]
        if missing:
            raise InvalidInputError(f"the model has no layer {', '.join(map(repr, missing))}: "
                                    f"this profile was fitted on another architecture")
        for lay in self.layers:
            kind = type(modules[lay.name]).__name__
            if kind != lay.module:
                raise InvalidInputError(f"layer {lay.name!r} is a {kind} in this model but a "
                                        f"{lay.module} in the profile: another architecture")

    def score(self, model: nn.Module, batch: Any, alpha: float = 0.01) -> AnomalyReport:
        """Score the inputs of ``batch`` (x or (x, lengths); an iterable of batches works
        too; one input is a batch of one) against the reference profile."""
        _check_alpha(alpha)
        self.check_model(model)
        _, feats = collect(model, batch, self.layer_names)
        return self.score_features(feats, alpha)

    def score_features(self, feats: Mapping[str, np.ndarray],
                       alpha: float = 0.01) -> AnomalyReport:
        """Score pooled features ``{layer: (n, 2 * channels)}`` (from ``features.collect``)."""
        _check_alpha(alpha)
        for lay in self.layers:
            if lay.name not in feats:
                raise InvalidInputError(f"no features for layer {lay.name!r}")
            if feats[lay.name].ndim != 2 or feats[lay.name].shape[1] != lay.dims:
                raise InvalidInputError(
                    f"layer {lay.name!r} has {feats[lay.name].shape[-1] // 2} channels but "
                    f"{lay.channels} in the profile: another architecture")
        scores = np.stack([lay.distance(feats[lay.name]) for lay in self.layers], axis=1)
        return self._report(scores, alpha)

    def _report(self, scores: np.ndarray, alpha: float) -> AnomalyReport:
        n_cal = self.n_calibration
        cal = np.stack([lay.calibration for lay in self.layers])  # (L, n_cal)
        test_ranks = np.empty(scores.shape, dtype=np.int64)
        adjusted = np.empty(scores.shape)
        for i in range(0, len(scores), _CHUNK):
            part = scores[i:i + _CHUNK]
            ranks = 1 + (cal[None, :, :] >= part[:, :, None]).sum(-1)  # 1 + #{cal >= s}
            le = cal[None, :, :] <= part[:, :, None]  # (n, L, n_cal): test >= calibration
            test_ranks[i:i + _CHUNK] = ranks
            # Among calibration + test, a calibration input's rank gains one where the test
            # score is >= its own.
            adjusted[i:i + _CHUNK] = _step_down_min_p(ranks, self._cal_ranks[None] + le)
        p_values = test_ranks / (n_cal + 1)
        p_value = adjusted.min(axis=1)
        z = (scores - self._cal_mean) / self._cal_std
        tie_break = 1.0 / (1.0 + np.exp(-np.clip(z.max(axis=1), -50, 50)))
        anomaly_score = (n_cal + 1) * (1.0 - p_value) + tie_break
        report = AnomalyReport(self.layer_names, scores, p_values, _holm(p_values), p_value,
                               alpha, adjusted=adjusted, anomaly_score=anomaly_score)
        report.first_divergent_layer = report.divergent_layers(alpha)
        return report

    # -- storage ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str] | None = None) -> bytes | None:
        """Write the profile as ``.npz`` (plain arrays + JSON metadata) to ``path``; with no
        path, return the bytes."""
        arrays: dict[str, np.ndarray] = {}
        layers_meta = []
        for i, lay in enumerate(self.layers):
            layers_meta.append({"name": lay.name, "module": lay.module,
                                "channels": lay.channels, "detector": lay.detector.options()})
            for key in ("channel_mean", "channel_std", "calibration"):
                arrays[f"{i}.{key}"] = getattr(lay, key)
            for key, value in lay.detector.arrays().items():
                arrays[f"{i}.detector.{key}"] = value
        meta = {**self.meta, "format": FORMAT, "layers": layers_meta}
        arrays["meta"] = np.array(json.dumps(meta))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        if path is None:
            return data
        with open(path, "wb") as f:
            f.write(data)
        return None

    @classmethod
    def load(cls, source: str | os.PathLike[str] | bytes) -> Profile:
        """A profile from the bytes or the file ``save`` wrote."""
        try:
            if isinstance(source, (bytes, bytearray)):
                raw = bytes(source)
            else:
                with open(source, "rb") as f:
                    raw = f.read()
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            meta = json.loads(str(arrays.pop("meta")))
        except FileNotFoundError:
            raise InvalidInputError(f"no profile file at {source!r}") from None
        except (ValueError, OSError, KeyError) as exc:
            raise InvalidInputError(f"not a tympan probe profile: {exc}") from None
        if meta.get("format") != FORMAT:
            raise InvalidInputError(f"not a tympan probe profile this version reads (format "
                                    f"{meta.get('format')!r}, expected {FORMAT!r}): fit it "
                                    f"again")
        kind = detector_class(meta["detector"])
        layers = []
        for i, lm in enumerate(meta.pop("layers")):
            prefix = f"{i}.detector."
            det = kind.restore({k[len(prefix):]: v for k, v in arrays.items()
                                if k.startswith(prefix)}, lm["detector"])
            layers.append(LayerProfile(
                lm["name"], lm["module"], int(lm["channels"]), meta["pooling"], det,
                arrays[f"{i}.channel_mean"], arrays[f"{i}.channel_std"],
                arrays[f"{i}.calibration"]))
        meta.pop("format")
        return cls(layers, meta)

    def log(self, run: Any, name: str = PROFILE) -> None:
        """Log the profile to a tympan run as the artifact ``probe/profile.npz``."""
        run.log_artifact(self.save(), name=name, media_type="application/octet-stream")

    @classmethod
    def from_run(cls, record: Any, name: str = PROFILE) -> Profile:
        """The profile a run logged (``record`` from ``tympan.load_run``)."""
        return cls.load(record.read_artifact(name))


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must lie in (0, 1), got {alpha}")


def _check_settings(calibration: float, pooling: str, detector: str) -> None:
    if not 0 < calibration < 1:
        raise InvalidInputError(f"calibration must be a fraction in (0, 1), got {calibration}")
    if pooling not in POOLINGS:
        raise InvalidInputError(f"pooling must be one of {', '.join(POOLINGS)}, got "
                                f"{pooling!r}")
    detector_class(detector)


def _ranks_ge(values: np.ndarray) -> np.ndarray:
    """For each value, how many values are >= it (itself included)."""
    return (values[None, :] >= values[:, None]).sum(1)


def fit(model: nn.Module, reference_loader: Any, layers: str | list[str] = "auto",
        calibration: float = 0.3, seed: int = 0, max_inputs: int | None = 5000,
        detector: str = "mahalanobis", pooling: str = "mean+std",
        detector_options: Mapping[str, Any] | None = None) -> Profile:
    """Fit a reference profile of ``model``'s layers on ``reference_loader`` (batches of x or
    (x, lengths)), holding out a seeded ``calibration`` fraction of the inputs to calibrate
    p-values. ``detector``: ``"mahalanobis"`` or ``"knn"`` (``detector_options`` such as
    ``{"k": 5, "metric": "cosine"}``); ``pooling``: ``"mean+std"`` or ``"mean"``."""
    _check_settings(calibration, pooling, detector)
    names, feats = collect(model, reference_loader, layers, max_inputs)
    modules = dict(model.named_modules())
    return fit_features(feats, {n: type(modules[n]).__name__ for n in names},
                        calibration=calibration, seed=seed, detector=detector,
                        pooling=pooling, detector_options=detector_options,
                        model=type(model).__name__)


def fit_features(feats: Mapping[str, np.ndarray], modules: Mapping[str, str],
                 calibration: float = 0.3, seed: int = 0, detector: str = "mahalanobis",
                 pooling: str = "mean+std", detector_options: Mapping[str, Any] | None = None,
                 model: str = "") -> Profile:
    """``fit`` on pooled features already collected: ``feats`` {layer: (n, 2 * channels)} in
    forward order, ``modules`` {layer: module class name}."""
    _check_settings(calibration, pooling, detector)
    options = dict(detector_options or {})
    require_finite(dict(feats), "the reference data")
    names = list(feats)
    n = len(feats[names[0]])
    n_cal = round(n * calibration)
    n_fit = n - n_cal
    if n_cal < 10 or n_fit < 10:
        raise InvalidInputError(f"{n} reference inputs give {n_fit} to fit and {n_cal} to "
                                f"calibrate; give at least 10 of each (a few hundred "
                                f"calibration inputs are needed to flag at alpha=0.01)")
    order = np.random.default_rng(seed).permutation(n)
    fit_idx, cal_idx = np.sort(order[n_cal:]), np.sort(order[:n_cal])
    layer_profiles = [_fit_layer(name, modules[name], feats[name][fit_idx],
                                 feats[name][cal_idx], pooling, detector, options)
                      for name in names]
    meta = {"n_fit": n_fit, "n_calibration": n_cal, "seed": seed, "calibration": calibration,
            "model": model, "detector": detector, "detector_options": options,
            "pooling": pooling, "combination": "joint-conformal-min-p",
            "localisation": "step-down-min-p"}
    return Profile(layer_profiles, meta)
