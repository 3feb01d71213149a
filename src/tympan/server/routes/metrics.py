"""Read routes for a run's metrics: their summaries, and one series for a chart."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from tympan.errors import NotFoundError
from tympan.server.downsample import chart_series
from tympan.server.routes._read import ReadChecks, Reader, StoreDep, json_response, visible_run

router = APIRouter(prefix="/api", tags=["metrics"], dependencies=ReadChecks)


@router.get("/runs/{run_id}/metrics")
def list_metrics(principal: Reader, store: StoreDep, run_id: str) -> Response:
    """Every metric of the run with its summary, by key."""
    record = visible_run(store, principal, run_id)
    return json_response({"metrics": [{"key": key, **asdict(s)}
                                      for key, s in sorted(record.summary.items())]})


@router.get("/runs/{run_id}/metrics/{key:path}")
def metric_series(
    principal: Reader,
    store: StoreDep,
    run_id: str,
    key: str,
    x: Literal["step", "time"] = "step",
    points: Annotated[int, Query(ge=10, le=20000)] = 1500,
    start: float | None = None,
    end: float | None = None,
) -> Response:
    """One metric's points for a chart: downsampled keeping spikes, full fidelity when the
    ``start``..``end`` window holds few enough points."""
    record = visible_run(store, principal, run_id)
    if key not in record.summary:
        raise NotFoundError(f"run {run_id} has no metric {key!r}")
    series = record.history(key)
    chart = chart_series(series, x, points, start, end, started_at=record.started_at)
    return json_response(chart.as_json(), safe=True)
