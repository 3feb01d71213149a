"""``tympan probe fit|score|drift`` as functions: probe a stored run's model, record the result.

Each job loads the model a run trained (through its recipe's ``probe_target()``, see
``target.py``), feeds it the inputs ``sources.py`` reads, and records what it found as a new
run in the model's project, tagged ``probe`` and ``probe-<job>``, whose parent is the model's
run and whose config says what was probed with what. The result is an artifact of that run:

- fit:   ``probe/profile.npz`` (the reference profile, loadable alone);
- score: ``probe/anomaly/<label>.json``: per input, the combined p-value, whether it is
  flagged, the first divergent layer and the per-layer scores and p-values;
- drift: ``probe/drift/<label>.json``: per layer, MMD, p-value, Holm p-value, drifted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import tympan
from tympan.errors import InvalidInputError, NotFoundError
from tympan.probe.profile import Profile, fit
from tympan.probe.scorer import Scorer
from tympan.probe.sources import Inputs, read_inputs
from tympan.probe.target import ProbeTarget, load_target, output_head
from tympan.records.probe import PROBE_TAG, PROFILE, anomaly_path, drift_path


@dataclass
class FitResult:
    run_id: str
    profile: Profile
    inputs: Inputs


@dataclass
class ScoreResult:
    run_id: str
    report: dict[str, Any]  # the JSON stored as probe/anomaly/<label>.json


@dataclass
class DriftResult:
    run_id: str
    report: dict[str, Any]  # the JSON stored as probe/drift/<label>.json


def batches(target: ProbeTarget, inputs: Inputs, batch_size: int) -> list[Any]:
    return [target.batch(inputs.waves[i:i + batch_size])
            for i in range(0, len(inputs), batch_size)]


def fit_profile(model_run: str, *, store: str | None = None, recipe: str | None = None,
                data: str = "split:test", shifts: tuple[str, ...] = (),
                layers: str | list[str] = "auto", calibration: float = 0.3, seed: int = 0,
                detector: str = "mahalanobis", pooling: str = "mean+std",
                limit: int | None = None, batch_size: int = 32,
                calibrate_on: str | None = None) -> FitResult:
    """Fit a reference profile of ``model_run``'s model on ``data``; record it. With
    ``calibrate_on`` (data, e.g. ``split:valid,test``), every input of ``data`` fits and
    those of ``calibrate_on`` calibrate; else a ``calibration`` fraction of ``data`` is held
    out."""
    record = tympan.load_run(model_run, store=store)
    target = load_target(recipe, record)
    model = target.load_model(record)
    inputs = read_inputs(data, target, record, shifts=shifts, limit=limit, seed=seed)
    cal: Any = calibration
    cal_inputs = None
    if calibrate_on is not None:
        cal_inputs = read_inputs(calibrate_on, target, record, shifts=shifts, seed=seed)
        cal = batches(target, cal_inputs, batch_size)
    head = output_head(target)
    profile = fit(model, batches(target, inputs, batch_size), layers=layers,
                  calibration=cal, seed=seed, max_inputs=None, detector=detector,
                  pooling=pooling, head=head)
    config = {"job": "fit", "model_run": record.id, "data": inputs.label, "layers": layers,
              "calibration": calibration if cal_inputs is None else cal_inputs.label,
              "seed": seed, "inputs": len(inputs), "detector": detector, "pooling": pooling,
              "output_layer": None if head is None else head.layer}
    with _probe_run(record, "fit", config, store) as run:
        profile.log(run)
        run.log({"probe/layers": len(profile.layer_names),
                 "probe/n_calibration": profile.n_calibration, "probe/inputs": len(inputs)})
    return FitResult(run.id, profile, inputs)


def find_profile(record: Any, profile: str | None, store: str | None) -> tuple[Profile, str]:
    """The profile to score against, and where it came from: ``profile`` (a run id or an .npz
    file), else the model run's own ``probe/profile.npz``, else its latest probe-fit run."""
    if profile is not None:
        if profile.endswith(".npz") or Path(profile).is_file():
            return Profile.load(profile), profile
        holder = tympan.load_run(profile, store=store)
        return Profile.from_run(holder), holder.id
    if any(a.path == PROFILE for a in record.artifacts()):
        return Profile.from_run(record), record.id
    fits = tympan.find_runs(store=store, project=record.project, tags=["probe-fit"],
                            where={"probe.model_run": record.id}, status="finished")
    if not fits:
        raise NotFoundError(f"run {record.id} has no reference profile yet: run "
                            f"`tympan probe fit {record.id}` first, or pass --profile")
    latest = max(fits, key=lambda r: r.started_at or 0)
    return Profile.from_run(latest), latest.id


def score_inputs(model_run: str, *, store: str | None = None, recipe: str | None = None,
                 profile: str | None = None, data: str = "split:test",
                 shifts: tuple[str, ...] = (), alpha: float = 0.01, label: str | None = None,
                 limit: int | None = None, seed: int = 0, batch_size: int = 32) -> ScoreResult:
    """Score each input of ``data`` against a reference profile of ``model_run``'s model."""
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must be in (0, 1), got {alpha}")
    record = tympan.load_run(model_run, store=store)
    found, source = find_profile(record, profile, store)
    target = load_target(recipe, record)
    scorer = Scorer(target.load_model(record), found, target.batch, target.sample_rate,
                    alpha=alpha, batch_size=batch_size)
    inputs = read_inputs(data, target, record, shifts=shifts, limit=limit, seed=seed)
    report = anomaly_json([scorer.report(inputs.waves)], inputs, alpha,
                          label or inputs.label)
    report |= {"model_run": record.id, "profile": source}
    flagged = [row["flagged"] for row in report["inputs"]]
    config = {"job": "score", "model_run": record.id, "profile": source, "data": inputs.label,
              "alpha": alpha, "seed": seed, "inputs": len(inputs)}
    with _probe_run(record, "score", config, store) as run:
        run.log_artifact(json.dumps(report, allow_nan=False).encode(),
                         name=anomaly_path(report["label"]))
        run.log({"probe/inputs": len(inputs), "probe/flagged": int(sum(flagged)),
                 "probe/flagged_fraction": float(np.mean(flagged))})
    return ScoreResult(run.id, report)


def anomaly_json(reports: list[Any], inputs: Inputs, alpha: float,
                 label: str) -> dict[str, Any]:
    """The stored anomaly report (format: docs/probe.md, ``tympan probe``)."""
    layers = reports[0].layers
    rows: list[dict[str, Any]] = []
    for rep in reports:
        flagged = rep.flagged(alpha)
        for i in range(len(rep)):
            rows.append({
                "id": inputs.ids[len(rows)],
                "p_value": float(rep.p_value[i]),
                "anomaly_score": _finite(rep.anomaly_score[i]),
                "flagged": bool(flagged[i]),
                "entry_layer": rep.entry_layer[i],
                "first_divergent_layer": rep.first_divergent_layer[i],
                "z": {s: _finite(rep.profile[i, j]) for j, s in enumerate(rep.stages)},
                "outputs": {n: _finite(rep.outputs[i, j])
                            for j, n in enumerate(rep.output_names)},
                "scores": {name: _finite(rep.scores[i, j]) for j, name in enumerate(layers)},
                "p_values": {name: float(rep.p_values[i, j]) for j, name in enumerate(layers)},
            })
    rep = reports[0]
    return {"label": label, "alpha": alpha, "layers": layers, "stages": rep.stages,
            "n_calibration": rep.n_calibration, "min_p_value": 1 / (rep.n_calibration + 1),
            "inputs": rows}


def drift_data(model_run: str, *, store: str | None = None, recipe: str | None = None,
               data_a: str = "split:test", data_b: str | None = None,
               shifts_a: tuple[str, ...] = (), shifts_b: tuple[str, ...] = (),
               checkpoint_b: str | None = None, layers: str | list[str] = "auto",
               alpha: float = 0.05, permutations: int = 500, limit: int | None = None,
               seed: int = 0, batch_size: int = 32) -> DriftResult:
    """Which layers of ``model_run``'s model drift between two data sets, or (with
    ``checkpoint_b``, another run of the same recipe) between two checkpoints on ``data_a``."""
    from tympan.probe.drift import drift, drift_between_checkpoints

    record = tympan.load_run(model_run, store=store)
    target = load_target(recipe, record)
    model = target.load_model(record)
    a = read_inputs(data_a, target, record, shifts=shifts_a, limit=limit, seed=seed)
    common = {"layers": layers, "alpha": alpha, "permutations": permutations, "seed": seed}
    if checkpoint_b is not None:
        other = tympan.load_run(checkpoint_b, store=store)
        model_b = target.load_model(other)
        batches_a = batches(target, a, batch_size)
        result = drift_between_checkpoints(model, model_b, batches_a, **common)
        side_a, side_b = f"{record.id} on {a.label}", f"{other.id} on {a.label}"
    else:
        if data_b is None and not shifts_b:
            raise InvalidInputError("drift needs a second side: --b DATA, --b-shift SHIFT or "
                                    "--checkpoint-b RUN")
        b = read_inputs(data_b or data_a, target, record, shifts=shifts_b, limit=limit,
                        seed=seed + 1)
        result = drift(model, batches(target, a, batch_size), batches(target, b, batch_size),
                       **common)
        side_a, side_b = a.label, b.label
    rows = [row | {"mmd": row["effect"]} for row in result.rows()]
    report = {"label": f"{side_a} vs {side_b}", "a": side_a, "b": side_b, "alpha": alpha,
              "n_a": result.n_a, "n_b": result.n_b, "model_run": record.id, "layers": rows}
    config = {"job": "drift", "model_run": record.id, "a": side_a, "b": side_b,
              "alpha": alpha, "permutations": permutations, "seed": seed}
    with _probe_run(record, "drift", config, store) as run:
        run.log_artifact(json.dumps(report, allow_nan=False).encode(),
                         name=drift_path(report["label"]))
        run.log({"probe/drifted_layers": len(result.drifted_layers),
                 "probe/layers": len(rows)})
    return DriftResult(run.id, report)


def _probe_run(record: Any, job: str, config: dict[str, Any], store: str | None) -> Any:
    # Under one "probe" key, so the model project's config columns stay the models' own.
    return tympan.init(project=record.project, name=f"probe-{job}-{record.name}",
                       config={"probe": config}, tags=[PROBE_TAG, f"probe-{job}"],
                       parent=record.id, store=store)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None

