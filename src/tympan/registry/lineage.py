"""Where a version comes from, captured once at registration so it survives copying: the run,
its code version, the data manifests it trained on (with hours, speakers and languages per
split), the study and trial it ran in, and the version it was fine-tuned from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tympan.store import studies as study_records

MANIFEST = "manifest.jsonl"


def lineage(record: Any, data: Sequence[str] = (), parent: str | None = None) -> dict[str, Any]:
    """The lineage of a version registered from ``record`` (a RunRecord)."""
    env = record.environment() or {}
    git = env.get("git") or {}
    diff = git.get("diff")
    return {
        "run": {"id": record.id, "name": record.name, "project": record.project,
                "status": record.status, "started_at": record.started_at,
                "ended_at": record.ended_at},
        "git": {"commit": git.get("commit"), "branch": git.get("branch"),
                "dirty": git.get("dirty"), "remote": git.get("remote"),
                "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None},
        "packages": {name: (env.get("packages") or {}).get(name)
                     for name in ("torch", "tympan", "numpy")
                     if (env.get("packages") or {}).get(name)},
        "data": [manifest_summary(path) for path in manifests(record.config, data)],
        "study": None,  # filled in by the registry from its own store (study_of)
        "parent": parent,
    }


def manifests(config: dict[str, Any], extra: Sequence[str] = ()) -> list[Path]:
    """Manifests the run trained on: given ones, and config values naming a corpus folder
    (holding manifest.jsonl) or a .jsonl file."""
    found: list[Path] = []
    candidates = [*extra, *(v for v in _values(config) if isinstance(v, str))]
    for text in candidates:
        path = Path(text)
        try:
            if path.is_dir() and (path / MANIFEST).is_file():
                path = path / MANIFEST
            elif not (path.is_file() and path.suffix == ".jsonl"):
                continue
        except OSError:
            continue
        if path.resolve() not in {p.resolve() for p in found}:
            found.append(path)
    return found


def _values(config: Any) -> list[Any]:
    if isinstance(config, dict):
        return [v for value in config.values() for v in _values(value)]
    return [config]


def manifest_summary(path: Path) -> dict[str, Any]:
    """sha256 of the manifest, and per split: utterances, hours, speakers and languages."""
    raw = path.read_bytes()
    splits: dict[str, dict[str, Any]] = {}
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        split = splits.setdefault(str(row.get("split") or "all"),
                                  {"utterances": 0, "seconds": 0.0, "speakers": set(),
                                   "languages": set()})
        split["utterances"] += 1
        duration = row.get("duration")
        split["seconds"] += float(duration) if isinstance(duration, int | float) else 0.0
        if row.get("speaker") is not None:
            split["speakers"].add(str(row["speaker"]))
        if row.get("lang") is not None:
            split["languages"].add(str(row["lang"]))
    return {
        "path": str(path.resolve()),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "splits": {name: {"utterances": s["utterances"], "hours": s["seconds"] / 3600,
                          "speakers": len(s["speakers"]),
                          "languages": sorted(s["languages"])}
                   for name, s in sorted(splits.items())},
    }


def study_of(store: Any, run_id: str, study_id: str | None) -> dict[str, Any] | None:
    """The study (and trial: arm, seed) the run ran in, if any."""
    with store.read() as conn:
        trial = study_records.trial_of_run(conn, run_id)
        study_id = trial.study_id if trial is not None else study_id
        study = study_records.get(conn, study_id) if study_id else None
    if study is None:
        return None
    out: dict[str, Any] = {"id": study.id, "name": study.name}
    if trial is not None:
        out["trial"] = {"key": trial.key, "arm": trial.arm, "seed": trial.seed,
                        "levels": trial.levels}
    return out
