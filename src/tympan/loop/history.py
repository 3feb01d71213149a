"""What a loop did: its iterations as their gate runs recorded them, oldest first (for
``tympan loop status`` and the web UI's pipeline page)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tympan.errors import TympanError
from tympan.loop.iteration import KEY_TAG, gate_runs, judged_manifests, manifests_in
from tympan.loop.spec import Pipeline


def iterations(pipeline: Pipeline, store: str | None = None) -> list[dict[str, Any]]:
    """The pipeline's iterations (see :func:`iteration_rows`)."""
    return iteration_rows(gate_runs(pipeline, store, status="finished"))


def model_iterations(source: Any, model: str, events: list[Any]) -> list[dict[str, Any]]:
    """Every loop iteration that judged a challenger of ``model``, from any pipeline, read
    through a run source (``tympan.records.source``); ``promotion`` is the alias event among
    ``events`` (the model's alias history) whose evidence is the iteration's gate run."""
    from tympan.records.query import RunFilter, RunQuery

    runs = source.find_runs(RunQuery(RunFilter(tags=(KEY_TAG,), statuses=("finished",))))
    rows = iteration_rows([r for r in runs if (r.config or {}).get("model") == model])
    moves = {e.evidence.get("id"): e.as_dict() for e in events
             if e.evidence and e.evidence.get("kind") == "gate"}
    for row in rows:
        row["promotion"] = moves.get(row["run"])
    return rows


def iteration_rows(runs: list[Any]) -> list[dict[str, Any]]:
    """Each iteration: when, what triggered it, the new manifests (and their utterances when
    they are still readable), champion and challenger versions, the gold metric of both with
    the paired interval and every seed, each check and the verdict."""
    from tympan.registry.gate import GATE_REPORT

    out = []
    for run in runs:
        try:
            report = json.loads(run.read_artifact(GATE_REPORT))
        except (TympanError, ValueError):
            continue
        checks = report.get("checks", [])
        metric = next((c for c in checks if c["name"].startswith("gold/")), {})
        config = run.config or {}
        new = config.get("new_manifests") or []
        out.append({"run": run.id, "project": run.project, "started_at": run.started_at,
                    "key": config.get("key"), "pipeline": config.get("pipeline"),
                    "trigger": config.get("trigger") or "new data",
                    "new_manifests": new,
                    "data_added": [{"path": p, "utterances": _utterances(p)} for p in new],
                    "trainings": config.get("trainings") or [],
                    "champion": report.get("champion"),
                    "challenger": report.get("challenger") or None,
                    "passed": bool(report.get("passed")), "summary": report.get("summary"),
                    "metric": metric.get("name"), "champion_value": metric.get("champion"),
                    "challenger_value": metric.get("challenger"),
                    "challenger_seeds": metric.get("challenger_seeds") or [],
                    "effect": metric.get("effect"), "low": metric.get("low"),
                    "high": metric.get("high"), "confidence": metric.get("confidence"),
                    "must_be_below": metric.get("must_be_below"), "checks": checks})
    return sorted(out, key=lambda i: i["started_at"])


def _utterances(manifest: str) -> int | None:
    try:
        return sum(1 for line in Path(manifest).read_text(encoding="utf-8").splitlines()
                   if line.strip())
    except OSError:
        return None


def pending(pipeline: Pipeline, store: str | None = None) -> list[str]:
    """Manifests of the data folder that no iteration has judged yet."""
    import tympan.models as models

    spec = pipeline.spec
    champion = models.get(f"{pipeline.model_name}@champion", store=store)
    seen = judged_manifests(pipeline, store) | set(
        str(champion.config.get(spec.data_key) or "").split(","))
    return [str(p) for p in manifests_in(pipeline.resolve(spec.data)) if str(p) not in seen]
