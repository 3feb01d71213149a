"""Read routes for what the probe recorded on a run: layers and their statistics over steps,
health events, anomaly and drift reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from tympan.records.probe import layer_stat_keys, probe_data
from tympan.server.downsample import chart_series, finite_or_none
from tympan.server.routes._read import ReadChecks, Reader, StoreDep, json_response, visible_run

router = APIRouter(prefix="/api", tags=["probe"], dependencies=ReadChecks)


@router.get("/runs/{run_id}/probe")
def probe(principal: Reader, store: StoreDep, run_id: str) -> Response:
    """The run's probe: layers with their statistics, events, anomaly and drift reports."""
    data = probe_data(visible_run(store, principal, run_id))
    return json_response({
        "layers": [{"layer": layer, "stats": stats} for layer, stats in data.layers.items()],
        "stats": data.stats, "events": data.events, "anomaly": data.anomaly,
        "drift": data.drift, "profile": data.profile, "snapshot": data.snapshot,
    })


@router.get("/runs/{run_id}/probe/stats")
def probe_stats(principal: Reader, store: StoreDep, run_id: str,
                stat: Annotated[str, Query(min_length=1, max_length=100)] = "mean",
                points: Annotated[int, Query(ge=10, le=20000)] = 500) -> Response:
    """One statistic of every layer over steps (default: the mean)."""
    record = visible_run(store, principal, run_id)
    layers = []
    for layer, key in layer_stat_keys(record, stat).items():
        chart = chart_series(record.history(key), "step", points)
        layers.append({"layer": layer, "x": chart.x.tolist(), "y": finite_or_none(chart.y),
                       "count": chart.count, "downsampled": chart.downsampled})
    return json_response({"stat": stat, "layers": layers}, safe=True)
