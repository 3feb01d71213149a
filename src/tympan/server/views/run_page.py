"""Everything about one stored run that its page shows, as plain data (JSON-able once
``json_safe``): fields, config, environment, summaries, artifacts, audio, images, tables,
probe, study."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tympan.config import flatten
from tympan.records.compare import environment_facts
from tympan.records.export import run_fields
from tympan.records.probe import probe_summary
from tympan.records.record import RunRecord, child_runs
from tympan.store import studies

__all__ = ["artifact_fields", "keys_and_steps", "run_page"]


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
        "archived_at": record.archived_at,
        "config_flat": flatten(record.config or {}),
        "environment": environment,
        "environment_facts": None if environment is None else environment_facts(environment),
        "metrics": {key: asdict(s) for key, s in sorted(record.summary.items())},
        "artifacts": [artifact_fields(a) for a in artifacts],
        "audio": {"count": len(samples), "keys": keys_and_steps(samples)},
        "images": {"count": len(images), "keys": keys_and_steps(images)},
        "tables": {"count": len(tables), "keys": keys_and_steps(tables)},
        "probe": probe_summary(record),
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
