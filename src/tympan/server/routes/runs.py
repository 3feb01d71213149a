"""Read routes for projects, the runs table, run groups, one run, and a compare of N runs
(shapes in docs/api.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from tympan.errors import InvalidInputError
from tympan.records.compare import CommonStep, compare_runs
from tympan.records.export import json_safe
from tympan.records.groups import group_runs
from tympan.records.query import FILTER_PARAMS, RunFilter, RunQuery, parse_sort
from tympan.records.table import TableRun, query_runs
from tympan.server.routes._read import (
    ReadChecks,
    Reader,
    StoreDep,
    json_response,
    listed,
    scoped_project,
    visible_run,
)
from tympan.server.views.run_page import run_page

router = APIRouter(prefix="/api", tags=["runs"], dependencies=ReadChecks)

Listed = Annotated[list[str] | None, Query()]
MAX_COMPARE = 50


@router.get("/projects")
def list_projects(principal: Reader, store: StoreDep) -> Response:
    """The projects the token can see, with their numbers of runs."""
    from tympan.store import run_table

    only = principal.projects_filter()
    with store.read() as conn:
        counts = run_table.project_counts(conn)
    return json_response({"projects": [
        {"name": name, "runs": n, "last_started_at": last}
        for name, n, last in counts if only is None or name == only]})


def run_filter(request: Request, principal: Reader, project: str | None = None,
               status: Listed = None, tag: Listed = None, where: Listed = None,
               q: str | None = None, study: str | None = None) -> RunFilter:
    """The runs table's filters (query parameters shared by /runs and /runs/groups), parsed
    by the same RunQuery as ``tympan.find_runs``; the project is the token's if it has one."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k in FILTER_PARAMS]
    parsed = RunQuery.from_params(items).filter
    return replace(parsed, project=scoped_project(principal, parsed.project))


Filters = Annotated[RunFilter, Depends(run_filter)]


@router.get("/runs")
def list_runs(
    store: StoreDep,
    filters: Filters,
    sort: str | None = None,
    desc: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Response:
    """The runs table: filtered, sorted and paged on the server."""
    query = RunQuery(filters, parse_sort(sort) if sort else None, desc, limit, offset)
    page = query_runs(store, query)
    return json_response({
        "total": page.total, "offset": page.offset, "limit": page.limit,
        "runs": [_table_row(r) for r in page.runs],
        "config_keys": page.config_keys, "metric_keys": page.metric_keys,
    })


@router.get("/runs/groups")
def list_groups(
    store: StoreDep,
    filters: Filters,
    by: Annotated[list[str], Query()],
    metric: str | None = None,
    confidence: Annotated[float, Query(ge=0.5, le=0.999)] = 0.95,
    desc: bool = False,
    members: Annotated[int, Query(ge=0, le=100_000)] = 100,
) -> Response:
    """Runs grouped by config keys with the mean and Student t interval of a metric; each
    group lists its first ``members`` runs (by seed) and counts them all in ``size``."""
    result = group_runs(store, filters, listed(by), metric or None, confidence, desc, members)
    groups = []
    for g in result.groups:
        group = json_safe({"values": g.values, "n": g.n, "mean": g.mean, "std": g.std,
                           "low": g.low, "high": g.high, "size": g.size})
        # a member's fields are JSON as they are (its value is None unless finite): made
        # here, not walked by json_safe (13 ms of 3,600 members)
        group["runs"] = [{"id": m.id, "name": m.name, "seed": m.seed, "status": m.status,
                          "value": m.value} for m in g.members]
        groups.append(group)
    return json_response({
        "by": result.by, "metric": result.metric, "summary": result.summary,
        "confidence": result.confidence, "total": result.total, "groups": groups}, safe=True)


@router.get("/runs/{run_id}")
def get_run(principal: Reader, store: StoreDep, run_id: str) -> Response:
    """Everything the run page shows but metric points and file bytes."""
    record = visible_run(store, principal, run_id)
    return json_response(run_page(record))


@router.get("/compare")
def compare(principal: Reader, store: StoreDep, runs: Annotated[list[str], Query()]
            ) -> Response:
    """Shared metrics, config differences and common audio, images and tables of 2 to 50
    runs."""
    ids = list(dict.fromkeys(listed(runs)))
    if not 2 <= len(ids) <= MAX_COMPARE:
        raise InvalidInputError(f"compare needs 2 to {MAX_COMPARE} distinct run ids "
                                f"(runs=a,b,...), got {len(ids)}")
    result = compare_runs(store, ids, project=principal.projects_filter())
    return json_response({
        "runs": [_table_row(r) | {"config": r.config} for r in result.runs],
        "metric_keys": {"shared": result.shared_metrics, "all": result.all_metrics},
        "config_diff": {"keys": result.config_keys, "values": result.config_values,
                        "same": result.config_same},
        "audio": [_common(a) for a in result.audio],
        "images": [_common(a) for a in result.images],
        "tables": [_common(a) for a in result.tables],
    })


def _common(item: CommonStep) -> dict[str, Any]:
    return {"key": item.key, "step": item.step, "in_all": item.in_all, "samples": item.samples}


def _table_row(run: TableRun) -> dict[str, Any]:
    return {
        "id": run.id, "name": run.name, "project": run.project, "status": run.status,
        "created_at": run.created_at, "started_at": run.started_at,
        "ended_at": run.ended_at, "duration": run.duration, "tags": run.tags,
        "seed": run.seed, "study_id": run.study_id, "parent_id": run.parent_id,
        "config": run.config, "archived_at": run.archived_at,
        "metrics": {key: {"last": s.last, "min": s.min, "max": s.max, "count": s.count}
                    for key, s in sorted(run.metrics.items())},
    }

