"""Read routes for a run's metrics: their summaries, and one series for a chart."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from tympan.errors import InvalidInputError, NotFoundError
from tympan.records.bands import seed_band
from tympan.server.downsample import chart_series
from tympan.server.routes._read import (
    ReadChecks,
    Reader,
    StoreDep,
    json_response,
    listed,
    visible_run,
)

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


MAX_BAND_RUNS = 500


@router.get("/metrics/band")
def metric_band(
    principal: Reader,
    store: StoreDep,
    runs: Annotated[list[str], Query()],
    key: str,
    confidence: Annotated[float, Query(ge=0.5, le=0.999)] = 0.95,
    points: Annotated[int, Query(ge=10, le=20000)] = 1000,
) -> Response:
    """A metric's mean across runs (a seed group) at each step, with the group table's
    Student t interval."""
    ids = listed(runs)
    if not ids or len(ids) > MAX_BAND_RUNS:
        raise InvalidInputError(f"runs= names {len(ids)} runs: give 1 to {MAX_BAND_RUNS}")
    records = [visible_run(store, principal, run_id) for run_id in dict.fromkeys(ids)]
    return json_response(asdict(seed_band(records, key, confidence, points)))
