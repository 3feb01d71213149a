"""The probe's stored format, and what it stored on a run read back for display.

This module is the one owner of the format: ``tympan.probe`` writes with these names, every
reader (``tympan show``, the run and probe pages) reads through :func:`probe_data`.

- metrics ``probe/<layer>/<stat>`` (:func:`layer_metric`): a layer's statistics over steps;
- ``probe/stats.json``: the last snapshot of the streaming statistics;
- ``probe/events.json``: the training health events;
- ``probe/profile.npz``: a reference profile (``tympan probe fit``);
- ``probe/anomaly/<label>.json`` and ``probe/drift/<label>.json``: reports of ``tympan probe
  score`` and ``drift``, stored on probe runs (children of the model's run tagged ``probe``).

See docs/probe.md for how they are made.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tympan.errors import InvalidInputError

if TYPE_CHECKING:  # the format above is imported by training code: keep it free of the store
    from tympan.records.record import RunRecord

__all__ = ["ANOMALY", "DRIFT", "EVENTS", "PREFIX", "PROBE_TAG", "PROFILE", "STATS",
           "ProbeData", "anomaly_path", "drift_path", "layer_metric", "layer_stat_keys",
           "probe_data", "probe_summary", "split_probe_key"]

PREFIX = "probe/"
STATS = "probe/stats.json"
EVENTS = "probe/events.json"
PROFILE = "probe/profile.npz"
ANOMALY = "probe/anomaly/"
DRIFT = "probe/drift/"
PROBE_TAG = "probe"  # the tag of every `tympan probe` run (with probe-fit, -score, -drift)


def layer_metric(layer: str, stat: str) -> str:
    """The metric key of one statistic of one layer: ``probe/encoder.0/mean``."""
    return f"{PREFIX}{layer}/{stat}"


def anomaly_path(label: str) -> str:
    return f"{ANOMALY}{_slug(label)}.json"


def drift_path(label: str) -> str:
    return f"{DRIFT}{_slug(label)}.json"


def _slug(label: str) -> str:
    """A label as an artifact file name: letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")[:80] or "inputs"


@dataclass
class ProbeData:
    layers: dict[str, list[str]] = field(default_factory=dict)  # layer -> its stats, sorted
    stats: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    anomaly: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    profile: bool = False
    snapshot: bool = False


def split_probe_key(key: str) -> tuple[str, str] | None:
    """``probe/encoder.0/mean`` -> ``("encoder.0", "mean")``; None for other keys."""
    if not key.startswith(PREFIX):
        return None
    layer, _, stat = key[len(PREFIX):].rpartition("/")
    return (layer, stat) if layer and stat else None


def layer_stat_keys(record: RunRecord, stat: str) -> dict[str, str]:
    """layer -> metric key of ``stat`` for every layer that logged it, in key order."""
    out = {}
    for key in sorted(record.summary):
        parts = split_probe_key(key)
        if parts is not None and parts[1] == stat:
            out[parts[0]] = key
    return out


def probe_runs(record: RunRecord) -> list[RunRecord]:
    """The ``tympan probe`` runs of a model's run: its children tagged ``probe``."""
    from tympan.records.record import child_runs

    return [c for c in child_runs(record) if PROBE_TAG in (c.tags or [])]


def probe_data(record: RunRecord, children: bool = True) -> ProbeData:
    """Everything the probe left on ``record`` and, with ``children``, the anomaly and drift
    reports of its ``tympan probe`` runs (its children tagged ``probe``); empty when it has
    no probe."""
    return _gather(record, probe_runs(record) if children else [])


def probe_summary(record: RunRecord) -> dict[str, Any]:
    """What the run page says about the probe: counts and report labels, from the same
    reader as the probe page (so the two never disagree)."""
    runs = probe_runs(record)
    data = _gather(record, runs)
    return {
        "available": bool(data.layers or data.events or data.anomaly or data.drift
                          or data.profile or data.snapshot or runs),
        "runs": [r.id for r in runs],  # its `tympan probe` runs (fit, score, drift)
        "layers": len(data.layers),
        "events": len(data.events),
        "anomaly": [str(r["label"]) for r in data.anomaly],
        "drift": [str(r["label"]) for r in data.drift],
        "profile": data.profile,
    }


def _gather(record: RunRecord, children: list[RunRecord]) -> ProbeData:
    data = ProbeData()
    for child in children:
        reports = _reports(child)
        data.anomaly += reports.anomaly
        data.drift += reports.drift
        data.profile = data.profile or reports.profile
    stats: set[str] = set()
    for key in sorted(record.summary):
        parts = split_probe_key(key)
        if parts is not None:
            data.layers.setdefault(parts[0], []).append(parts[1])
            stats.add(parts[1])
    data.stats = sorted(stats)
    paths = sorted(a.path for a in record.artifacts() if a.path.startswith(PREFIX))
    data.snapshot = STATS in paths
    if EVENTS in paths:
        events = _json(record, EVENTS)
        if isinstance(events, list):
            data.events = sorted((e for e in events if isinstance(e, dict)),
                                 key=lambda e: (_step(e), str(e.get("layer"))))
    own = _reports(record, paths)
    data.anomaly = own.anomaly + data.anomaly
    data.drift = own.drift + data.drift
    data.profile = data.profile or own.profile
    return data


def _reports(record: RunRecord, paths: list[str] | None = None) -> ProbeData:
    """The anomaly and drift reports stored on ``record`` (each tagged with its run id)."""
    if paths is None:
        paths = sorted(a.path for a in record.artifacts() if a.path.startswith(PREFIX))
    data = ProbeData(profile=PROFILE in paths)
    for path in paths:
        if not path.endswith(".json"):
            continue
        if path.startswith(ANOMALY):
            report = _json(record, path)
            if isinstance(report, dict):
                label = report.get("label") or path[len(ANOMALY):-5]
                inputs = report.get("inputs") if isinstance(report.get("inputs"), list) else []
                flagged = sum(1 for i in inputs if isinstance(i, dict) and i.get("flagged"))
                data.anomaly.append({**report, "label": label, "inputs": inputs,
                                     "flagged": flagged, "run": record.id})
        elif path.startswith(DRIFT):
            report = _json(record, path)
            if isinstance(report, dict):
                data.drift.append({**report, "label": report.get("label")
                                   or path[len(DRIFT):-5], "run": record.id})
    return data


def _json(record: RunRecord, path: str) -> Any:
    try:
        return json.loads(record.read_artifact(path))
    except (InvalidInputError, ValueError, UnicodeDecodeError):
        return None


def _step(event: dict[str, Any]) -> float:
    step = event.get("step")
    return float(step) if isinstance(step, int | float) else float("inf")
