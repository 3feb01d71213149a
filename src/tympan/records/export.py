"""Exporting a stored run: every metric point as CSV, or the run, summary and series as JSON.

Pure functions of a :class:`~tympan.records.record.RunRecord` that write to a text stream.

CSV is long format, one row per point, header ``key,step,time,value``; keys in name order,
points in logging order per key; non-finite values are written ``nan``, ``inf``, ``-inf``
(what Python's ``float()`` and pandas read back).

JSON is standard JSON (RFC 8259 has no NaN or Infinity): non-finite floats anywhere in the
document are encoded as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO

from tympan.errors import InvalidInputError
from tympan.records.record import RunRecord
from tympan.store.summaries import Summary

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FORMATS",
    "export_run",
    "json_safe",
    "run_fields",
    "summary_fields",
    "write_csv",
    "write_json",
]

FORMATS = ("csv", "json")
CSV_HEADER = ("key", "step", "time", "value")

_RUN_FIELDS = (
    "id", "name", "project", "status", "created_at", "started_at", "ended_at",
    "heartbeat_at", "duration", "config", "tags", "note", "parent_id", "study_id", "host",
    "pid", "seed", "error",
)


def export_run(record: RunRecord, format: Literal["csv", "json"], out: TextIO) -> None:
    """Write ``record`` to ``out`` as ``csv`` or ``json`` (see the module docstring)."""
    if format == "csv":
        write_csv(record, out)
    elif format == "json":
        write_json(record, out)
    else:
        raise InvalidInputError(f"unknown export format {format!r}: use one of csv, json")


def write_csv(record: RunRecord, out: TextIO) -> int:
    """Every point of every metric, long format; returns the number of points written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    written = 0
    for key in record.metric_keys():
        series = record.history(key)
        # str(float) is the shortest text that reads back to the same float, and is
        # nan / inf / -inf for the non-finite ones.
        writer.writerows(
            (key, step, time, value)
            for step, time, value in zip(
                series.steps.tolist(), series.times.tolist(), series.values.tolist(),
                strict=True,
            )
        )
        written += len(series)
    return written


def write_json(record: RunRecord, out: TextIO, indent: int | None = None) -> None:
    """``{"run": {...}, "summary": {key: {...}}, "metrics": {key: {steps, values, times}}}``."""
    metrics: dict[str, dict[str, list[Any]]] = {}
    for key in record.metric_keys():
        series = record.history(key)
        metrics[key] = {
            "steps": series.steps.tolist(),
            "values": _floats(series.values),
            "times": _floats(series.times),
        }
    document = {
        "run": json_safe(run_fields(record)),
        "summary": json_safe(summary_fields(record.summary)),
        "metrics": metrics,  # already safe: walking a million floats again costs seconds
    }
    # dumps, not dump: dump encodes in Python chunk by chunk, dumps in C (5x faster here).
    out.write(json.dumps(document, indent=indent, allow_nan=False) + "\n")


def run_fields(record: RunRecord) -> dict[str, Any]:
    """The run's stored fields, config and tags included (``json_safe`` them for JSON)."""
    return {name: getattr(record, name) for name in _RUN_FIELDS}


def summary_fields(summary: Mapping[str, Summary]) -> dict[str, dict[str, Any]]:
    """A run's metric summaries by key (sorted): last, min, max with their steps, counts."""
    return {key: asdict(s) for key, s in sorted(summary.items())}


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return float(value)  # a plain float, also for numpy's float64
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _floats(array: np.ndarray) -> list[float | str]:
    import numpy as np  # the series are numpy arrays: it is loaded already

    values = array.tolist()
    return values if np.isfinite(array).all() else [_float(v) for v in values]


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by "NaN"/"Infinity"/"-Infinity" and
    dataclasses, tuples and sets turned into dicts and lists, so ``json.dumps(...,
    allow_nan=False)`` accepts it."""
    if isinstance(value, float):
        return _float(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_safe(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if item is not None and getattr(value, "ndim", None) == 0:
        return json_safe(item())
    return str(value)
