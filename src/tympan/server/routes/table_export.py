"""Downloads of what the runs page shows: the runs table (every run the filters match, not
one page) and the run groups with their interval statistics, as CSV or JSON.

``GET /api/runs/export?format=csv|json&columns=...`` takes the runs table's filters and sort;
``columns`` are the page's column ids (``config:KEY``, ``metric:KEY``, ``metric:KEY.min``),
every config key and every metric's last value when left out. ``GET
/api/runs/groups/export?format=csv|json&by=...&metric=...`` takes the groups' parameters and
writes one row per group (its config values, n, size, mean, std and interval), the same
numbers as ``/api/runs/groups``. Non-finite values are ``nan``/``inf`` in CSV and strings in
JSON (as ``tympan export``)."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from tympan.errors import InvalidInputError
from tympan.records.export import json_safe
from tympan.records.groups import group_runs
from tympan.records.query import RunQuery, parse_sort
from tympan.records.table import TableRun, query_runs
from tympan.server.routes._read import ReadChecks, StoreDep, listed
from tympan.server.routes.runs import Filters, Listed

router = APIRouter(prefix="/api", tags=["runs"], dependencies=ReadChecks)

RUN_FIELDS = ("id", "name", "project", "status", "started_at", "ended_at", "duration",
              "tags", "seed", "parent_id", "study_id")
SUMMARIES = ("last", "min", "max", "count")


def _format(format: str) -> str:
    if format not in ("csv", "json"):
        raise InvalidInputError(f"unknown export format {format!r}: use one of csv, json")
    return format


def _column(spec: str) -> tuple[str, str, str]:
    """``config:KEY`` or ``metric:KEY[.last|min|max|count]`` -> (kind, key, summary)."""
    kind, _, key = spec.partition(":")
    if kind == "config" and key:
        return kind, key, ""
    if kind == "metric" and key:
        base, _, summary = key.rpartition(".")
        if base and summary in SUMMARIES:
            return kind, base, summary
        return kind, key, "last"
    raise InvalidInputError(
        f"unknown column {spec!r}: use config:KEY or metric:KEY[.last|.min|.max|.count]")


def _value(run: TableRun, column: tuple[str, str, str]) -> Any:
    kind, key, summary = column
    if kind == "config":
        return run.config.get(key)
    s = run.metrics.get(key)
    return None if s is None else getattr(s, summary)


def _title(column: tuple[str, str, str]) -> str:
    kind, key, summary = column
    return key if kind == "config" else (key if summary == "last" else f"{key}.{summary}")


def _download(rows: list[dict[str, Any]], header: list[str], format: str, name: str) -> Response:
    if format == "json":
        body = json.dumps(json_safe(rows), indent=1)
        media = "application/json"
    else:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if row[k] is None else _cell(row[k]) for k in header])
        body, media = out.getvalue(), "text/csv; charset=utf-8"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'})


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value  # str(float) reads back: nan, inf, -inf


@router.get("/runs/export")
def export_runs(store: StoreDep, filters: Filters, format: str = "csv",
                columns: Listed = None, sort: str | None = None,
                desc: bool = False) -> Response:
    """Every run the filters match, in the table's order, with the chosen columns."""
    format = _format(format)
    page = query_runs(store, RunQuery(filters, parse_sort(sort) if sort else None, desc))
    specs = listed(columns) if columns else (
        [f"config:{k}" for k in page.config_keys] + [f"metric:{k}" for k in page.metric_keys])
    chosen = [_column(s) for s in specs]
    header = [*RUN_FIELDS, *(_title(c) for c in chosen)]
    rows = [{**{f: getattr(run, f) for f in RUN_FIELDS},
             **{_title(c): _value(run, c) for c in chosen}} for run in page.runs]
    return _download(rows, header, format, "runs")


@router.get("/runs/groups/export")
def export_groups(store: StoreDep, filters: Filters, by: Annotated[list[str], Query()],
                  metric: str | None = None,
                  confidence: Annotated[float, Query(ge=0.5, le=0.999)] = 0.95,
                  desc: bool = False, format: str = "csv") -> Response:
    """One row per group: its config values and the metric's n, size, mean, std and interval."""
    format = _format(format)
    result = group_runs(store, filters, listed(by), metric or None, confidence, desc, 0)
    label = None if result.metric is None else (
        result.metric + ("" if result.summary in (None, "last") else f".{result.summary}"))
    header = [*result.by, "metric", "n", "size", "mean", "std", "low", "high", "confidence"]
    rows = [{**{k: g.values[k] for k in result.by}, "metric": label, "n": g.n,
             "size": g.size, "mean": g.mean, "std": g.std, "low": g.low, "high": g.high,
             "confidence": result.confidence} for g in result.groups]
    return _download(rows, header, format, "groups")
