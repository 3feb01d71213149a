"""Reference profile of a model's layers, and per-input anomaly scoring against it.

``fit(model, reference_loader)`` pools per-input features per layer (``features.py``), splits
the reference inputs (seeded) into a fit part and a calibration part, and per layer keeps:

- the per-dimension mean and scale of the fit features, and the precision (inverse) of a
  Ledoit-Wolf shrinkage covariance of the standardized features;
- channel statistics (input-weighted mean and standard deviation of each channel);
- the calibration scores: the Mahalanobis distance of each held-out calibration input.

``Profile.score(model, batch)`` gives each input its per-layer Mahalanobis scores, per-layer
conformal p-values ``(1 + #{calibration scores >= s}) / (n_cal + 1)``, one combined p-value,
and the first layer (in forward order) that is significant after Holm's correction.

The combined p-value is a *joint conformal min-p*: the test statistic is the smallest
per-layer conformal p-value, and it is ranked against the same statistic of each calibration
input, computed among the calibration inputs plus the test input. That statistic is a
symmetric function of the n_cal + 1 points, so the p-value is exactly valid when the input
comes from the reference distribution (P(p <= alpha) <= alpha), whatever the dependence
between layers, and it reaches 1 / (n_cal + 1) where Bonferroni would stop at
layers / (n_cal + 1). Holm's first step is Bonferroni, so an input can be flagged while no
single layer survives Holm: its ``first_divergent_layer`` is then None.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from tympan.errors import InvalidInputError
from tympan.probe.features import collect, require_finite

FORMAT = "tympan.probe.profile/1"
ARTIFACT = "probe/profile.npz"
_EPS = 1e-12


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of centred rows ``x`` (n, d), and the shrinkage used."""
    n, d = x.shape
    emp = x.T @ x / n
    mu = np.trace(emp) / d
    x2 = x**2
    beta_ = float((x2.T @ x2).sum()) / n
    delta_ = float((emp**2).sum())
    beta = (beta_ - delta_) / (d * n)
    delta = (delta_ - 2 * mu * np.trace(emp) + d * mu**2) / d
    beta = min(max(beta, 0.0), delta)
    shrinkage = 0.0 if delta <= 0 else beta / delta
    cov = (1 - shrinkage) * emp + shrinkage * mu * np.eye(d)
    return cov, float(shrinkage)


def _precision(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    floor = max(float(vals.max()) * 1e-9, _EPS)
    return (vecs / np.maximum(vals, floor)) @ vecs.T


@dataclass
class LayerProfile:
    """What the profile knows about one layer."""

    name: str
    module: str  # class name of the module, to tell another architecture apart
    mean: np.ndarray  # (d,) fit-feature mean; d = 2 * channels (means then stds)
    scale: np.ndarray  # (d,) fit-feature standard deviation (floored)
    precision: np.ndarray  # (d, d) inverse shrunk covariance of standardized features
    shrinkage: float
    channel_mean: np.ndarray  # (channels,) mean activation of each channel
    channel_std: np.ndarray  # (channels,) standard deviation of each channel
    calibration: np.ndarray  # (n_cal,) Mahalanobis scores of the calibration inputs

    @property
    def dims(self) -> int:
        return len(self.mean)

    def distance(self, feats: np.ndarray) -> np.ndarray:
        z = (feats - self.mean) / self.scale
        d2 = np.einsum("ij,jk,ik->i", z, self.precision, z)
        d = np.sqrt(np.maximum(d2, 0.0))
        return np.where(np.isfinite(feats).all(axis=1), d, np.inf)


def _fit_layer(name: str, module: str, fit: np.ndarray, cal: np.ndarray) -> LayerProfile:
    mean = fit.mean(0)
    scale = fit.std(0)
    scale = np.where(scale > 1e-8 * max(float(scale.max()), 1.0), scale, 1.0)
    cov, shrinkage = ledoit_wolf((fit - mean) / scale)
    c = fit.shape[1] // 2
    means, stds = fit[:, :c], fit[:, c:]
    channel_std = np.sqrt((stds**2).mean(0) + means.var(0))  # total variance over inputs
    layer = LayerProfile(name, module, mean, scale, _precision(cov), shrinkage, means.mean(0),
                         channel_std, np.empty(0))
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


@dataclass
class AnomalyReport:
    """Per-input anomaly scores. Arrays are indexed [input] or [input, layer]."""

    layers: list[str]  # forward order
    scores: np.ndarray  # (n, layers) Mahalanobis distance to the reference
    p_values: np.ndarray  # (n, layers) per-layer conformal p-values
    holm: np.ndarray  # (n, layers) Holm-adjusted per-layer p-values
    p_value: np.ndarray  # (n,) combined anomaly p-value (joint conformal min-p)
    alpha: float  # level first_divergent_layer was named at
    first_divergent_layer: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.p_value)

    def flagged(self, alpha: float | None = None) -> np.ndarray:
        """(n,) bool: inputs whose combined p-value is <= alpha (default: the report's)."""
        return self.p_value <= (self.alpha if alpha is None else alpha)

    def divergent_layers(self, alpha: float | None = None) -> list[str | None]:
        """First layer per input with Holm-adjusted p <= alpha, in forward order."""
        sig = self.holm <= (self.alpha if alpha is None else alpha)
        return [self.layers[int(np.argmax(row))] if row.any() else None for row in sig]


class Profile:
    """A fitted reference profile: one ``LayerProfile`` per watched layer, in forward order."""

    def __init__(self, layers: list[LayerProfile], meta: dict[str, Any]) -> None:
        self.layers = layers
        self.meta = meta
        # Calibration ranks per layer: #{calibration scores >= own score}, own included.
        self._cal_ranks = np.stack([_ranks_ge(lay.calibration) for lay in layers])

    @property
    def layer_names(self) -> list[str]:
        return [lay.name for lay in self.layers]

    @property
    def n_calibration(self) -> int:
        return len(self.layers[0].calibration)

    def __repr__(self) -> str:
        return (f"Profile({len(self.layers)} layers, {self.meta['n_fit']} fit + "
                f"{self.n_calibration} calibration inputs)")

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
        too) against the reference profile."""
        if not 0 < alpha < 1:
            raise InvalidInputError(f"alpha must lie in (0, 1), got {alpha}")
        self.check_model(model)
        _, feats = collect(model, batch, self.layer_names)
        for lay in self.layers:
            if feats[lay.name].shape[1] != lay.dims:
                raise InvalidInputError(
                    f"layer {lay.name!r} has {feats[lay.name].shape[1] // 2} channels but "
                    f"{lay.dims // 2} in the profile: another architecture")
        scores = np.stack([lay.distance(feats[lay.name]) for lay in self.layers], axis=1)
        return self._report(scores, alpha)

    def _report(self, scores: np.ndarray, alpha: float) -> AnomalyReport:
        n_cal = self.n_calibration
        cal = np.stack([lay.calibration for lay in self.layers])  # (L, n_cal)
        ge = cal[None, :, :] >= scores[:, :, None]  # (n, L, n_cal): calibration >= test
        p_values = (1 + ge.sum(-1)) / (n_cal + 1)
        # Joint min-p among calibration + test: a calibration input's rank gains one where
        # the test score is >= its own.
        cal_min = (self._cal_ranks[None] + ~ge).min(axis=1)  # (n, n_cal), ~ge: test >= cal
        test_min = p_values.min(axis=1) * (n_cal + 1)
        p_value = (1 + (cal_min <= test_min[:, None]).sum(-1)) / (n_cal + 1)
        holm = _holm(p_values)
        report = AnomalyReport(self.layer_names, scores, p_values, holm, p_value, alpha)
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
                                "shrinkage": lay.shrinkage})
            for key in ("mean", "scale", "precision", "channel_mean", "channel_std",
                        "calibration"):
                arrays[f"{i}.{key}"] = getattr(lay, key)
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
            raise InvalidInputError(f"not a tympan probe profile (format "
                                    f"{meta.get('format')!r}, expected {FORMAT!r})")
        layers = []
        for i, lm in enumerate(meta.pop("layers")):
            layers.append(LayerProfile(
                lm["name"], lm["module"], arrays[f"{i}.mean"], arrays[f"{i}.scale"],
                arrays[f"{i}.precision"], float(lm["shrinkage"]), arrays[f"{i}.channel_mean"],
                arrays[f"{i}.channel_std"], arrays[f"{i}.calibration"]))
        meta.pop("format")
        return cls(layers, meta)

    def log(self, run: Any, name: str = ARTIFACT) -> None:
        """Log the profile to a tympan run as the artifact ``probe/profile.npz``."""
        run.log_artifact(self.save(), name=name, media_type="application/octet-stream")

    @classmethod
    def from_run(cls, record: Any, name: str = ARTIFACT) -> Profile:
        """The profile a run logged (``record`` from ``tympan.load_run``)."""
        return cls.load(record.read_artifact(name))


def _ranks_ge(values: np.ndarray) -> np.ndarray:
    """For each value, how many values are >= it (itself included)."""
    return (values[None, :] >= values[:, None]).sum(1)


def fit(model: nn.Module, reference_loader: Any, layers: str | list[str] = "auto",
        calibration: float = 0.3, seed: int = 0, max_inputs: int | None = 5000) -> Profile:
    """Fit a reference profile of ``model``'s layers on ``reference_loader`` (batches of x or
    (x, lengths)), holding out a seeded ``calibration`` fraction of the inputs to calibrate
    p-values."""
    if not 0 < calibration < 1:
        raise InvalidInputError(f"calibration must be a fraction in (0, 1), got {calibration}")
    names, feats = collect(model, reference_loader, layers, max_inputs)
    require_finite(feats, "the reference data")
    n = len(feats[names[0]])
    n_cal = round(n * calibration)
    n_fit = n - n_cal
    if n_cal < 10 or n_fit < 10:
        raise InvalidInputError(f"{n} reference inputs give {n_fit} to fit and {n_cal} to "
                                f"calibrate; give at least 10 of each (a few hundred "
                                f"calibration inputs are needed to flag at alpha=0.01)")
    order = np.random.default_rng(seed).permutation(n)
    fit_idx, cal_idx = np.sort(order[n_cal:]), np.sort(order[:n_cal])
    modules = dict(model.named_modules())
    layer_profiles = [_fit_layer(name, type(modules[name]).__name__, feats[name][fit_idx],
                                 feats[name][cal_idx]) for name in names]
    meta = {"n_fit": n_fit, "n_calibration": n_cal, "seed": seed, "calibration": calibration,
            "model": type(model).__name__, "detector": "mahalanobis-ledoit-wolf",
            "combination": "joint-conformal-min-p"}
    return Profile(layer_profiles, meta)
