"""What ``tympan.probe`` stored on a run, read back for display: which layers have which
statistics (metrics ``probe/<layer>/<stat>``), the health events, the anomaly and drift
reports (artifacts under ``probe/``). Pure reads; see docs/probe.md for how they are made."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tympan.errors import InvalidInputError
from tympan.track.lookup import RunRecord, child_runs

__all__ = ["ProbeData", "layer_stat_keys", "probe_data", "split_probe_key"]

PREFIX = "probe/"
EVENTS = "probe/events.json"
ANOMALY = "probe/anomaly/"
DRIFT = "probe/drift/"


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


def probe_data(record: RunRecord, children: bool = True) -> ProbeData:
    """Everything the probe left on ``record`` and, with ``children``, the anomaly and drift
    reports of its ``tympan probe`` runs (its children tagged ``probe``); empty when it has
    no probe."""
    data = ProbeData()
    for child in child_runs(record) if children else []:
        if "probe" in (child.tags or []):
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
    data.snapshot = "probe/stats.json" in paths
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
    data = ProbeData(profile="probe/profile.npz" in paths)
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
