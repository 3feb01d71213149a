"""Everything about one stored run that its page shows, as plain data (JSON-able once
``json_safe``): fields, config, environment, summaries, artifacts, audio, images, tables,
probe, study."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from tympan.store import studies
from tympan.track.compare import environment_facts
from tympan.track.export import run_fields
from tympan.track.lookup import RunRecord, child_runs, flatten
from tympan.track.probe_data import split_probe_key

__all__ = ["artifact_fields", "keys_and_steps", "run_page"]

PROBE_PREFIX = "probe/"


def run_page(record: RunRecord) -> dict[str, Any]:
    """The run page's data (see docs/api.md, ``GET /api/runs/{run_id}``)."""
    artifacts = record.artifacts()
    samples = record.audio_samples()
    images = record.images()
    tables = record.tables()
    children = child_runs(record)
    environment = record.environment()
    page = run_fields(record)
    page.update({
        "config_flat": flatten(record.config or {}),
        "environment": environment,
        "environment_facts": None if environment is None else environment_facts(environment),
        "metrics": {key: asdict(s) for key, s in sorted(record.summary.items())},
        "artifacts": [artifact_fields(a) for a in artifacts],
        "audio": {"count": len(samples), "keys": keys_and_steps(samples)},
        "images": {"count": len(images), "keys": keys_and_steps(images)},
        "tables": {"count": len(tables), "keys": keys_and_steps(tables)},
        "probe": probe_presence(record, [a.path for a in artifacts], children),
        "study": study_link(record),
        "children": [{"id": c.id, "name": c.name, "status": c.status, "tags": c.tags or [],
                      "started_at": c.started_at} for c in children],
    })
    return page


def artifact_fields(row: Any) -> dict[str, Any]:
    return {"path": row.path, "size": row.size, "media_type": row.media_type,
            "sha256": row.sha256, "created_at": row.created_at}


def keys_and_steps(items: list[Any]) -> dict[str, list[int]]:
    """key -> its steps (sorted, distinct), keys sorted: of audio samples, images or tables."""
    keys: dict[str, set[int]] = {}
    for s in items:
        keys.setdefault(s.key, set()).add(int(s.step))
    return {k: sorted(v) for k, v in sorted(keys.items())}


def probe_presence(record: RunRecord, artifact_paths: list[str],
                   children: list[RunRecord] = ()) -> dict[str, Any]:
    layers = Counter(parts[0] for parts in map(split_probe_key, record.summary) if parts)
    probe_files = [p for p in artifact_paths if p.startswith(PROBE_PREFIX)]
    events = 0
    if "probe/events.json" in probe_files:
        import json

        try:
            events = len(json.loads(record.read_artifact("probe/events.json")))
        except (ValueError, TypeError):
            events = 0
    probe_runs = [c.id for c in children if "probe" in (c.tags or [])]
    return {
        "available": bool(layers or probe_files or probe_runs),
        "runs": probe_runs,  # its `tympan probe` runs (fit, score, drift)
        "layers": len(layers),
        "events": events,
        "anomaly": _labels(probe_files, "probe/anomaly/"),
        "drift": _labels(probe_files, "probe/drift/"),
        "profile": "probe/profile.npz" in probe_files,
    }


def _labels(paths: list[str], prefix: str) -> list[str]:
    return sorted(p[len(prefix):-len(".json")] for p in paths
                  if p.startswith(prefix) and p.endswith(".json"))


def study_link(record: RunRecord) -> dict[str, Any] | None:
    if record.store is None:
        return None
    with record.store.read() as conn:
        trial = studies.trial_of_run(conn, record.id)
        study_id = trial.study_id if trial is not None else record.study_id
        study = studies.get(conn, study_id) if study_id else None
    if study is None:
        return None
    return {"id": study.id, "name": study.name,
            "trial": None if trial is None else {"key": trial.key, "arm": trial.arm,
                                                 "seed": trial.seed, "status": trial.status}}
