"""Reference profile of a model's layers, and per-input anomaly scoring against it.

``fit(model, reference_loader)`` pools per-input features per layer (``features.py``), splits
the reference inputs (seeded) into a fit part and a calibration part, and per layer keeps:

- a detector fitted on the fit part (``detectors.py``; default: Mahalanobis distance under a
  Ledoit-Wolf shrinkage covariance of the standardized mean+std features, or ``knn``);
- channel statistics (input-weighted mean and standard deviation of each channel);
- the calibration scores: the detector's distance of each held-out calibration input.

- with an output head (the module giving the logits), the scale of the model's own output
  scores (energy, MSP, CTC blank ratio) on the fit part;
- the combined statistic of each calibration input (``combine.py``).

``Profile.score(model, batch)`` gives each input its per-layer distances and calibrated z
(``combine.py``), its output scores, one **combined anomaly score** (the largest z of any
layer or output score: continuous, for ranking and for saying how extreme an input is), its
conformal p-value ``(1 + #{calibration statistics >= s}) / (n_cal + 1)`` (exactly valid:
everything the statistic uses is fixed before the calibration inputs are scored), and the
stage where the divergence enters (the largest rise of the z profile).

Per layer it also reports conformal p-values, their Holm adjustment and Westfall and Young's
step-down min-P adjustment (``pvalues.py``), whose first significant layer in forward order
is ``first_divergent_layer``: the earliest layer that is out of distribution with
family-wise error control. With a small calibration set several layers sit at the p-value
floor and the earliest wins, which is why ``entry_layer`` (the largest z rise) is what the
CLI and the UI show.

The smallest p-value is 1 / (n_cal + 1): asking for an alpha below it is an error, since
nothing could ever be flagged.
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
from tympan.probe.combine import OUTPUT_STAGE, OutputProfile, out_of_fold
from tympan.probe.detectors import LayerDetector, detector_class
from tympan.probe.features import (
    OUTPUT_KEY,
    Kept,
    OutputHead,
    check_blank,
    collect,
    require_finite,
)
from tympan.probe.kernel import RowColumns, Scored, Scoring, place_channels
from tympan.probe.pvalues import holm, step_down_min_p
from tympan.records.probe import PROFILE

FORMAT = "tympan.probe.profile/3"
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
    z_mean: float = 0.0  # mean of the out-of-fold distances of the fit inputs
    z_std: float = 1.0  # their standard deviation: z = (distance - z_mean) / z_std

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
               kind: str, options: Mapping[str, Any], seed: int) -> LayerProfile:
    c = fit.shape[1] // 2
    used = fit if pooling == "mean+std" else fit[:, :c]
    means, stds = fit[:, :c], fit[:, c:]
    channel_std = np.sqrt((stds**2).mean(0) + means.var(0))  # total variance over inputs
    det = detector_class(kind)
    z_mean, z_std = out_of_fold(lambda a, b: det.fit(a, **options).distance(b), used, seed)
    layer = LayerProfile(name, module, c, pooling, det.fit(used, **options),
                         means.mean(0), channel_std, np.empty(0), z_mean, z_std)
    layer.calibration = layer.distance(cal)
    return layer


class _PerInput:
    """What both reports answer from their combined p-values and entry stages."""

    p_value: np.ndarray
    alpha: float
    stages: list[str]
    entry: np.ndarray

    def __len__(self) -> int:
        return len(self.p_value)

    def flagged(self, alpha: float | None = None) -> np.ndarray:
        """(n,) bool: inputs whose combined p-value is <= alpha (default: the report's)."""
        return self.p_value <= (self.alpha if alpha is None else alpha)

    def entry_layers(self, alpha: float | None = None) -> list[str | None]:
        """Per input flagged at alpha, the stage where its divergence enters; None if not
        flagged."""
        alpha = self.alpha if alpha is None else alpha
        stages = self.stages  # (Python numbers: iterating arrays makes a numpy scalar each)
        return [stages[e] if p <= alpha else None
                for e, p in zip(self.entry.tolist(), self.p_value.tolist(), strict=True)]


@dataclass
class CombinedReport(_PerInput):
    """The combined part of an ``AnomalyReport`` (same fields, same numbers): per input the
    combined anomaly score, its conformal p-value, the z profile over the stages and where
    the divergence enters; what a verdict needs (``Profile.combine_features``)."""

    stages: list[str]  # layers (+ "output")
    alpha: float
    anomaly_score: np.ndarray  # (n,) the largest calibrated z of any layer or output score
    p_value: np.ndarray  # (n,) its conformal p-value
    z: np.ndarray  # (n, layers) calibrated z
    output_names: list[str]
    outputs: np.ndarray  # (n, k) raw output scores
    output_z: np.ndarray  # (n, k)
    profile: np.ndarray  # (n, stages) z
    entry: np.ndarray  # (n,) stage index
    n_calibration: int
    entry_layer: list[str | None] = field(default_factory=list)  # flagged inputs' entry


@dataclass
class AnomalyReport(_PerInput):
    """Per-input anomaly scores. Arrays are indexed [input], [input, layer] or
    [input, stage] (stages: the layers, then ``"output"`` when the profile has a head)."""

    layers: list[str]  # forward order
    scores: np.ndarray  # (n, layers) detector distance to the reference
    p_values: np.ndarray  # (n, layers) per-layer conformal p-values
    holm: np.ndarray  # (n, layers) Holm-adjusted per-layer p-values (for comparison)
    p_value: np.ndarray  # (n,) conformal p-value of the combined anomaly score
    alpha: float  # level first_divergent_layer and entry_layer were named at
    first_divergent_layer: list[str | None] = field(default_factory=list)
    adjusted: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (n, layers)
    # step-down min-P adjusted per-layer p-values
    anomaly_score: np.ndarray = field(default_factory=lambda: np.empty(0))  # (n,) combined
    # statistic: the largest calibrated z of any layer or output score
    z: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (n, layers) calibrated
    output_names: list[str] = field(default_factory=list)  # energy, msp, blank_ratio
    outputs: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (n, k) raw
    output_z: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (n, k)
    stages: list[str] = field(default_factory=list)  # layers (+ "output")
    profile: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (n, stages) z
    entry: np.ndarray = field(default_factory=lambda: np.empty(0, int))  # (n,) stage index
    entry_layer: list[str | None] = field(default_factory=list)  # flagged inputs' entry
    n_calibration: int = 0

    def divergent_layers(self, alpha: float | None = None) -> list[str | None]:
        """First layer per input whose step-down adjusted p <= alpha, in forward order."""
        sig = self.adjusted <= (self.alpha if alpha is None else alpha)
        return [self.layers[int(np.argmax(row))] if row.any() else None for row in sig]


class Profile:
    """A fitted reference profile: one ``LayerProfile`` per watched layer, in forward order."""

    def __init__(self, layers: list[LayerProfile], meta: dict[str, Any],
                 output: OutputProfile | None = None,
                 output_calibration: np.ndarray | None = None) -> None:
        self.layers = layers
        self.meta = meta
        self.output = output
        cal = np.stack([lay.calibration for lay in layers])  # (L, n_cal)
        # Calibration ranks per layer: #{calibration scores >= own score}, own included.
        self._cal_ranks = np.stack([_ranks_ge(c) for c in cal])
        self.output_calibration = output_calibration  # (n_cal, 3) raw output scores
        self._scoring = Scoring(layers, output)
        # read on every request the serving guard scores (a profile's layers never change)
        self._widths = [(lay.name, lay.dims) for lay in layers]
        self._names = tuple(lay.name for lay in layers)
        self._alpha_ok = -1.0  # the last level check_alpha passed
        self._stages = [*self._names, *([OUTPUT_STAGE] if output else [])]
        # (n_cal,) combined statistics, kept sorted by the scoring for the p-values
        self.calibration = self._scoring.calibrate(cal.T, output_calibration)

    @property
    def layer_names(self) -> list[str]:
        return list(self._names)

    @property
    def n_calibration(self) -> int:
        return len(self.layers[0].calibration)

    @property
    def detector(self) -> str:
        return str(self.meta["detector"])

    @property
    def min_alpha(self) -> float:
        """The smallest p-value this profile can give: 1 / (n_calibration + 1)."""
        return 1.0 / (self.n_calibration + 1)

    @property
    def stages(self) -> list[str]:
        """The z profile's stages: the layers, then ``"output"`` with an output head."""
        return list(self._stages)

    def check_alpha(self, alpha: float) -> None:
        """Raise unless this profile can flag at ``alpha``."""
        _check_alpha(alpha)
        if alpha < self.min_alpha:
            n = self.n_calibration
            raise InvalidInputError(
                f"alpha {alpha:g} is below 1/(n_cal + 1) = {self.min_alpha:.4g}, the smallest "
                f"p-value of a profile calibrated on {n} inputs: nothing could be flagged. Use "
                f"alpha >= {self.min_alpha:.4g}, or refit with at least "
                f"{int(np.ceil(1 / alpha)) - 1} calibration inputs")

    def __repr__(self) -> str:
        head = "" if self.output is None else f", output head {self.output.head.layer!r}"
        return (f"Profile({len(self.layers)} layers{head}, {self.detector} on "
                f"{self.meta['pooling']} features, {self.meta['n_fit']} fit + "
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

    def score(self, model: nn.Module, batch: Any, alpha: float = 0.01,
              padding: str = "split") -> AnomalyReport:
        """Score the inputs of ``batch`` (x or (x, lengths); an iterable of batches works
        too; one input is a batch of one) against the reference profile. ``padding="split"``
        runs inputs of different lengths apart, so that no score depends on the batch (see
        ``features.py``)."""
        self.check_alpha(alpha)
        self.check_model(model)
        head = None if self.output is None else self.output.head
        _, feats = collect(model, batch, self.layer_names, head=head, padding=padding)
        return self.score_features(feats, alpha)

    def score_features(self, feats: Mapping[str, np.ndarray],
                       alpha: float = 0.01) -> AnomalyReport:
        """Score pooled features ``{layer: (n, 2 * channels)}`` (from ``features.collect``;
        with an output head, its scores under ``OUTPUT_KEY``)."""
        scored, raw = self._scored(feats, alpha)
        return self._report(scored, raw, alpha)

    def combine_features(self, feats: Mapping[str, np.ndarray],
                         alpha: float = 0.01) -> CombinedReport:
        """What ``score_features`` says of each input's combined score (its score, p-value,
        z profile and entry stage: a verdict), without the per-layer tests (p-values, Holm,
        step-down), which cost more than the rest on a batch of one: the serving guard's
        scoring. The numbers are the same as ``score_features``'s."""
        scored, raw = self._scored(feats, alpha)
        return self._combine(scored, raw, alpha)

    def combine_kept(self, kept: Kept, alpha: float = 0.01) -> CombinedReport:
        """``combine_features`` of a lone input's unpooled outputs (``Kept``, captured on this
        profile's layers and output head), pooled and scored in one compiled call: the
        serving guard's path. The numbers are the same."""
        got = self.kept_rows(kept, alpha)
        if got is None:  # a layer scored outside the kernel: the features' way
            return self.combine_features(kept.features(), alpha)
        return self._combine(*self._scoring.unpack(got[0]), alpha)

    def kept_rows(self, kept: Kept, alpha: float) -> tuple[np.ndarray, RowColumns] | None:
        """``Scoring.pool_and_score``'s rows of ``kept`` and where they hold what (None:
        score its features instead), checked against this profile
        (``scorer.kept_verdicts`` reads them)."""
        if alpha != self._alpha_ok:  # (checked once per level: the guard asks per request)
            self.check_alpha(alpha)
            self._alpha_ok = alpha
        head = None if self.output is None else self.output.head
        if kept.names != self._names or (kept.head is not head and kept.head != head):
            raise InvalidInputError(f"these outputs are of layers {list(kept.names)} and head "
                                    f"{kept.head}, the profile's of {self.layer_names} and "
                                    f"{head}")
        blank = -1 if head is None else check_blank(head.blank,
                                                    place_channels(kept.places[-1]))
        rows = self._scoring.pool_and_score(kept.places, blank)
        return None if rows is None else (rows, self._scoring.columns)

    def _scored(self, feats: Mapping[str, np.ndarray], alpha: float
                ) -> tuple[Scored, np.ndarray | None]:
        self.check_alpha(alpha)
        if self.output is not None and OUTPUT_KEY not in feats:
            raise InvalidInputError(f"no output scores ({OUTPUT_KEY!r}) for this profile's "
                                    f"output head {self.output.head.layer!r}")
        for name, dims in self._widths:
            got = feats.get(name)
            if got is None:
                raise InvalidInputError(f"no features for layer {name!r}")
            if got.ndim != 2 or got.shape[1] != dims:
                raise InvalidInputError(
                    f"layer {name!r} has {got.shape[-1] // 2} channels but {dims // 2} in the "
                    f"profile: another architecture")
        raw = None if self.output is None else np.asarray(feats[OUTPUT_KEY], float)
        return self._scoring(feats, raw), raw

    def _combine(self, scored: Scored, raw: np.ndarray | None,
                 alpha: float) -> CombinedReport:
        """The kernel's numbers (``kernel.py``) as a report: the combined statistic, its
        conformal p-value, the z profile and where the divergence enters."""
        n, layers = scored.distances.shape
        report = CombinedReport(
            list(self._stages), alpha, scored.statistic, scored.p_value,
            scored.stages[:, :layers], [] if self.output is None else list(self.output.names),
            np.empty((n, 0)) if raw is None else raw, scored.output_z, scored.stages,
            scored.entry, len(self.calibration))
        report.entry_layer = report.entry_layers(alpha)
        return report

    def _report(self, scored: Scored, raw: np.ndarray | None,
                alpha: float) -> AnomalyReport:
        n_cal = self.n_calibration
        scores = scored.distances
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
            adjusted[i:i + _CHUNK] = step_down_min_p(ranks, self._cal_ranks[None] + le)
        p_values = test_ranks / (n_cal + 1)
        part = self._combine(scored, raw, alpha)
        report = AnomalyReport(
            self.layer_names, scores, p_values, holm(p_values), part.p_value, alpha,
            adjusted=adjusted, anomaly_score=part.anomaly_score, z=part.z,
            output_names=part.output_names, outputs=part.outputs, output_z=part.output_z,
            stages=part.stages, profile=part.profile, entry=part.entry,
            n_calibration=n_cal)
        report.first_divergent_layer = report.divergent_layers(alpha)
        report.entry_layer = part.entry_layer
        return report

    # -- storage ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str] | None = None) -> bytes | None:
        """Write the profile as ``.npz`` (plain arrays + JSON metadata) to ``path``; with no
        path, return the bytes."""
        arrays: dict[str, np.ndarray] = {}
        layers_meta = []
        for i, lay in enumerate(self.layers):
            layers_meta.append({"name": lay.name, "module": lay.module,
                                "channels": lay.channels, "detector": lay.detector.options(),
                                "z_mean": lay.z_mean, "z_std": lay.z_std})
            for key in ("channel_mean", "channel_std", "calibration"):
                arrays[f"{i}.{key}"] = getattr(lay, key)
            for key, value in lay.detector.arrays().items():
                arrays[f"{i}.detector.{key}"] = value
        meta = {**self.meta, "format": FORMAT, "layers": layers_meta,
                "output": None if self.output is None else self.output.to_json()}
        if self.output is not None:
            arrays["output.calibration"] = self.output_calibration
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
                arrays[f"{i}.calibration"], float(lm["z_mean"]), float(lm["z_std"])))
        meta.pop("format")
        output = meta.pop("output", None)
        if output is None:
            return cls(layers, meta)
        return cls(layers, meta, OutputProfile.from_json(output), arrays["output.calibration"])

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
    if isinstance(calibration, float | int) and not 0 < calibration < 1:
        raise InvalidInputError(f"calibration must be a fraction in (0, 1), got {calibration}")
    if pooling not in POOLINGS:
        raise InvalidInputError(f"pooling must be one of {', '.join(POOLINGS)}, got "
                                f"{pooling!r}")
    detector_class(detector)


def _ranks_ge(values: np.ndarray) -> np.ndarray:
    """For each value, how many values are >= it (itself included)."""
    return (values[None, :] >= values[:, None]).sum(1)


def fit(model: nn.Module, reference_loader: Any, layers: str | list[str] = "auto",
        calibration: float | Any = 0.3, seed: int = 0, max_inputs: int | None = 5000,
        detector: str = "mahalanobis", pooling: str = "mean+std",
        detector_options: Mapping[str, Any] | None = None, head: OutputHead | None = None,
        padding: str = "split") -> Profile:
    """Fit a reference profile of ``model``'s layers on ``reference_loader`` (batches of x or
    (x, lengths)), holding out a seeded ``calibration`` fraction of the inputs to calibrate
    p-values, or calibrating on other data: ``calibration`` may be a loader (held-out inputs
    of the distribution to accept; then every reference input is used to fit).
    ``detector``: ``"mahalanobis"`` or ``"knn"`` (``detector_options`` such as
    ``{"k": 5, "metric": "cosine"}``); ``pooling``: ``"mean+std"`` or ``"mean"``; ``head``:
    the module whose output is the model's logits (and its CTC blank), to combine the
    model's own output scores with the layers'."""
    _check_settings(calibration if isinstance(calibration, float | int) else 0.5, pooling,
                    detector)
    names, feats = collect(model, reference_loader, layers, max_inputs, head, padding)
    cal_feats = None
    if not isinstance(calibration, float | int):
        _, cal_feats = collect(model, calibration, names, max_inputs, head, padding)
    modules = dict(model.named_modules())
    return fit_features(feats, {n: type(modules[n]).__name__ for n in names},
                        calibration=calibration if cal_feats is None else cal_feats,
                        seed=seed, detector=detector, pooling=pooling,
                        detector_options=detector_options, model=type(model).__name__,
                        head=head)


def fit_features(feats: Mapping[str, np.ndarray], modules: Mapping[str, str],
                 calibration: float | Mapping[str, np.ndarray] = 0.3, seed: int = 0,
                 detector: str = "mahalanobis", pooling: str = "mean+std",
                 detector_options: Mapping[str, Any] | None = None, model: str = "",
                 head: OutputHead | None = None) -> Profile:
    """``fit`` on pooled features already collected: ``feats`` {layer: (n, 2 * channels)} in
    forward order (with a ``head``, its scores under ``OUTPUT_KEY``), ``modules`` {layer:
    module class name}; ``calibration`` a fraction to hold out, or the calibration inputs'
    features."""
    fraction = calibration if isinstance(calibration, float | int) else None
    _check_settings(0.5 if fraction is None else fraction, pooling, detector)
    options = dict(detector_options or {})
    require_finite(dict(feats), "the reference data")
    names = [n for n in feats if n != OUTPUT_KEY]
    if head is not None and OUTPUT_KEY not in feats:
        raise InvalidInputError(f"no output scores ({OUTPUT_KEY!r}) in the features: collect "
                                f"them with head={head!r}")
    if fraction is None:
        require_finite(dict(calibration), "the calibration data")
        fit_part = dict(feats)
        cal_part = {n: np.asarray(calibration[n]) for n in feats}
        n_fit, n_cal = len(feats[names[0]]), len(cal_part[names[0]])
    else:
        n = len(feats[names[0]])
        n_cal = round(n * fraction)
        n_fit = n - n_cal
        order = np.random.default_rng(seed).permutation(n)
        fit_idx, cal_idx = np.sort(order[n_cal:]), np.sort(order[:n_cal])
        fit_part = {k: v[fit_idx] for k, v in feats.items()}
        cal_part = {k: v[cal_idx] for k, v in feats.items()}
    if n_cal < 10 or n_fit < 10:
        raise InvalidInputError(f"{n_fit} inputs to fit and {n_cal} to calibrate; give at least "
                                f"10 of each ({_CAL_HINT})")
    layer_profiles = [_fit_layer(name, modules[name], fit_part[name], cal_part[name], pooling,
                                 detector, options, seed) for name in names]
    output = output_cal = None
    if head is not None:
        if not np.isfinite(fit_part[OUTPUT_KEY][:, :2]).all():
            raise InvalidInputError("the output head gave non-finite logits on the reference "
                                    "data; the model or these inputs are broken")
        output = OutputProfile.fit(head, fit_part[OUTPUT_KEY])
        output_cal = cal_part[OUTPUT_KEY]
    meta = {"n_fit": n_fit, "n_calibration": n_cal, "seed": seed,
            "calibration": fraction if fraction is not None else "separate data",
            "model": model, "detector": detector, "detector_options": options,
            "pooling": pooling, "combination": "max-calibrated-z",
            "localisation": "largest-z-rise"}
    return Profile(layer_profiles, meta, output, output_cal)


_CAL_HINT = ("flagging at alpha needs at least 1/alpha - 1 calibration inputs: 99 for "
             "alpha = 0.01, 19 for 0.05, and a few hundred to check it")
