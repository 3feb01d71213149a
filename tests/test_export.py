"""tympan.records.export: CSV and standard-JSON exports of a stored run."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import tympan
from tympan.errors import InvalidInputError
from tympan.records.export import export_run, json_safe, write_csv, write_json
from tympan.records.record import RunRecord

VALUES = [0.1, float("nan"), 1e308, float("inf"), float("-inf"), -0.0, 1 / 3, 7.0]
STEPS = [10, 3, 4, 2, 20, 21, 5, 6]  # logging order, not step order


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> RunRecord:
    store = str(tmp_path_factory.mktemp("export") / "s")
    with pytest.MonkeyPatch.context() as patch:  # module scope: outside conftest's isolation
        for name in [n for n in os.environ if n.startswith("TYMPAN_")]:
            patch.delenv(name)
        patch.setenv("TYMPAN_CAPTURE_ENV", "0")
        patch.setenv("TYMPAN_SYSTEM_METRICS", "0")
        patch.setenv("TYMPAN_CONSOLE", "0")
        run = tympan.init(project="asr", name="odd", store=store, tags=["x"],
                          config={"model": {"encoder": "gru"}, "lr": 1e-3})
        for step, value in zip(STEPS, VALUES, strict=True):
            run.log({"loss": value}, step=step)
        run.log({"acc": 0.5}, step=30)
        run.finish()
    return tympan.load_run(run.id, store=store)


def same(a, b) -> bool:
    return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


def strict_loads(text: str):
    def refuse(name: str):
        raise AssertionError(f"{name} is not standard JSON")

    return json.loads(text, parse_constant=refuse)


def test_csv_is_long_format_in_logging_order_and_round_trips(record: RunRecord) -> None:
    out = io.StringIO()
    assert write_csv(record, out) == len(VALUES) + 1
    text = out.getvalue()
    assert text.splitlines()[0] == "key,step,time,value"
    assert "\r" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["key"] for r in rows] == ["acc"] + ["loss"] * len(VALUES)  # keys in name order
    loss = rows[1:]
    assert [int(r["step"]) for r in loss] == STEPS
    assert same([float(r["value"]) for r in loss], VALUES)
    assert [r["value"] for r in loss][1:5] == ["nan", "1e+308", "inf", "-inf"]
    assert [float(r["time"]) for r in loss] == record.history("loss").times.tolist()
    assert math.copysign(1, float(loss[5]["value"])) == -1  # -0.0 survives


def test_json_is_standard_and_round_trips(record: RunRecord) -> None:
    out = io.StringIO()
    write_json(record, out)
    doc = strict_loads(out.getvalue())
    assert set(doc) == {"run", "summary", "metrics"}
    run = doc["run"]
    assert run["id"] == record.id and run["name"] == "odd" and run["project"] == "asr"
    assert run["config"] == {"model": {"encoder": "gru"}, "lr": 1e-3} and run["tags"] == ["x"]
    assert run["status"] == "finished" and run["error"] is None
    loss = doc["metrics"]["loss"]
    assert loss["steps"] == STEPS
    assert loss["values"][1] == "NaN" and loss["values"][3:5] == ["Infinity", "-Infinity"]
    assert same([float(v) for v in loss["values"]], VALUES)
    assert loss["times"] == record.history("loss").times.tolist()
    assert doc["metrics"]["acc"] == {"steps": [30], "values": [0.5],
                                     "times": record.history("acc").times.tolist()}
    summary = doc["summary"]["loss"]
    assert summary["count"] == len(VALUES) and summary["nan_count"] == 1
    assert summary["inf_count"] == 2
    assert (summary["min"], summary["max"]) == ("-Infinity", "Infinity")


def test_export_run_dispatches_on_format(record: RunRecord) -> None:
    csv_out, json_out = io.StringIO(), io.StringIO()
    export_run(record, "csv", csv_out)
    export_run(record, "json", json_out)
    assert csv_out.getvalue().startswith("key,step,time,value\n")
    assert strict_loads(json_out.getvalue())["run"]["id"] == record.id
    with pytest.raises(InvalidInputError, match="unknown export format 'xml'"):
        export_run(record, "xml", io.StringIO())  # type: ignore[arg-type]


def test_a_run_without_metrics_exports_a_header_and_empty_series(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    run.finish()
    record = tympan.load_run(run.id, store=store)
    out = io.StringIO()
    assert write_csv(record, out) == 0 and out.getvalue() == "key,step,time,value\n"
    out = io.StringIO()
    write_json(record, out)
    doc = strict_loads(out.getvalue())
    assert doc["metrics"] == {} and doc["summary"] == {}


@dataclass
class Point:
    value: float
    tags: tuple[str, ...]


def test_json_safe_encodes_non_finite_floats_everywhere() -> None:
    data = {"a": [float("nan"), {"b": float("inf")}], "c": Point(float("-inf"), ("x",)),
            "d": np.float64("nan"), "e": 1.5, "f": None, "g": True, 3: "int key"}
    assert json_safe(data) == {
        "a": ["NaN", {"b": "Infinity"}], "c": {"value": "-Infinity", "tags": ["x"]},
        "d": "NaN", "e": 1.5, "f": None, "g": True, "3": "int key",
    }
    json.dumps(json_safe(data), allow_nan=False)
