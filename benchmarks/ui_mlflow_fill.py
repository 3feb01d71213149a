"""Fill an MLflow SQLite store with runs exported from a tympan store, fast, then check it
through MLflow's own client. Runs in the peer venv (a full MLflow), not in tympan's.

The first run of each experiment is logged through ``MlflowClient`` (create_run, log_batch,
set_terminated), so MLflow itself decides what a run's rows hold (system tags, artifact URI,
source columns). Every other run is a copy of that run's rows with its own id, name, times,
params, tags and metric points, bulk-inserted into MLflow's tables (its SQLAlchemy models)
in one transaction: filling 10,000 runs through the client took 38 minutes on this machine.
A long metric history (``history``) is bulk-inserted the same way. Then ``search_runs``
must give back every run with the exported params, tags and latest metric values, and the
bulk-inserted runs must carry the same system tags and info fields as the client's.

    PYTHON benchmarks/ui_mlflow_fill.py RUNS.jsonl sqlite:///PATH/mlflow.db ARTIFACTS IDS.json

RUNS.jsonl: one run a line, {"experiment", "id", "name", "status", "start_ms", "end_ms",
"params": {k: str}, "tags": {k: str}, "metrics": [[key, value, timestamp_ms, step], ...],
"history": null or {"key": K, "file": NPZ with steps, values, times_ms}}.
IDS.json (written): {"experiments": {name: id}, "runs": {exported id: MLflow run id}}.
"""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from mlflow.entities import Metric, Param
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient

RUN_NAME = "mlflow.runName"
HISTORY_BATCH = 100_000  # rows per executemany of a long history


def main(runs_file: str, db: str, artifacts: str, ids_file: str) -> None:
    exported = [json.loads(line) for line in Path(runs_file).read_text().splitlines()]
    took, t0 = {}, time.perf_counter()
    store = SqlAlchemyStore(db, artifacts)  # creates MLflow's schema (its own migrations)
    client = MlflowClient(db)
    took["schema"], t0 = time.perf_counter() - t0, time.perf_counter()
    by_experiment: dict[str, list[dict]] = defaultdict(list)
    for run in exported:
        by_experiment[run["experiment"]].append(run)
    experiments, ids, by_client = {}, {}, 0.0
    for name, runs in by_experiment.items():
        experiments[name] = client.create_experiment(name, artifact_location=f"{artifacts}/{name}")
        t1 = time.perf_counter()
        template = log_through_client(client, experiments[name], runs[0])
        by_client += time.perf_counter() - t1
        ids[runs[0]["id"]] = template
        ids.update(bulk_insert(store.engine, template, runs[1:]))
    took["runs"], t0 = time.perf_counter() - t0, time.perf_counter()
    took[f"through the client, {len(by_experiment)} runs"] = by_client
    for run in exported:
        if run["history"]:
            insert_history(store.engine, ids[run["id"]], run["history"])
    took["history"], t0 = time.perf_counter() - t0, time.perf_counter()
    check(client, store, experiments, by_experiment, ids)
    took["check"] = time.perf_counter() - t0
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in took.items()))
    Path(ids_file).write_text(json.dumps({"experiments": experiments, "runs": ids}))


def log_through_client(client: MlflowClient, experiment: str, run: dict) -> str:
    made = client.create_run(experiment, start_time=run["start_ms"], run_name=run["name"],
                             tags=run["tags"])
    run_id = made.info.run_id
    params = [Param(k, v) for k, v in run["params"].items()]
    metrics = [Metric(k, v, t, s) for k, v, t, s in run["metrics"]]
    for i in range(0, max(len(params), len(metrics), 1), 100):  # log_batch's limits
        client.log_batch(run_id, params=params[i:i + 100], metrics=metrics[i:i + 100])
    client.set_terminated(run_id, run["status"], end_time=run["end_ms"])
    return run_id


def bulk_insert(engine: sa.Engine, template_id: str, runs: list[dict]) -> dict[str, str]:
    """``runs`` as copies of the template run's rows, in one transaction."""
    with engine.begin() as conn:
        shape = dict(conn.execute(sa.select(SqlRun.__table__).where(
            SqlRun.run_uuid == template_id)).mappings().one())
        system = {k: v for k, v in conn.execute(sa.select(SqlTag.key, SqlTag.value).where(
            SqlTag.run_uuid == template_id)) if k.startswith("mlflow.")}
        ids, run_rows, tag_rows, param_rows, metric_rows, latest_rows = {}, [], [], [], [], []
        for run in runs:
            run_id = ids[run["id"]] = uuid.uuid4().hex
            run_rows.append(shape | {
                "run_uuid": run_id, "name": run["name"], "status": run["status"],
                "start_time": run["start_ms"], "end_time": run["end_ms"],
                "artifact_uri": shape["artifact_uri"].replace(template_id, run_id)})
            tags = system | {RUN_NAME: run["name"]} | run["tags"]
            tag_rows += [{"run_uuid": run_id, "key": k, "value": v} for k, v in tags.items()]
            param_rows += [{"run_uuid": run_id, "key": k, "value": v}
                           for k, v in run["params"].items()]
            points = [metric_row(run_id, *point) for point in run["metrics"]]
            metric_rows += points
            latest_rows += latest(points)
        for model, rows in ((SqlRun, run_rows), (SqlTag, tag_rows), (SqlParam, param_rows),
                            (SqlMetric, metric_rows), (SqlLatestMetric, latest_rows)):
            if rows:
                conn.execute(model.__table__.insert(), rows)
    return ids


def metric_row(run_id: str, key: str, value: float, timestamp: int, step: int) -> dict:
    nan = math.isnan(value)  # MLflow keeps NaN as 0 with is_nan set
    return {"run_uuid": run_id, "key": key, "value": 0.0 if nan else value,
            "timestamp": int(timestamp), "step": int(step), "is_nan": nan}


def latest(points: list[dict]) -> list[dict]:
    """Each key's latest point as MLflow picks it: the highest step, then time, then value."""
    best: dict[str, dict] = {}
    for p in points:
        kept = best.get(p["key"])
        if kept is None or ((p["step"], p["timestamp"], p["value"])
                            > (kept["step"], kept["timestamp"], kept["value"])):
            best[p["key"]] = p
    return list(best.values())


def insert_history(engine: sa.Engine, run_id: str, history: dict) -> None:
    data = np.load(history["file"])
    steps, values, times = data["steps"], data["values"], data["times_ms"]
    key = history["key"]
    with engine.begin() as conn:
        conn.execute(sa.delete(SqlMetric.__table__).where(SqlMetric.run_uuid == run_id,
                                                         SqlMetric.key == key))
        conn.execute(sa.delete(SqlLatestMetric.__table__).where(
            SqlLatestMetric.run_uuid == run_id, SqlLatestMetric.key == key))
        for i in range(0, len(steps), HISTORY_BATCH):
            conn.execute(SqlMetric.__table__.insert(), [
                metric_row(run_id, key, float(v), int(t), int(s)) for s, v, t in
                zip(steps[i:i + HISTORY_BATCH], values[i:i + HISTORY_BATCH],
                    times[i:i + HISTORY_BATCH], strict=True)])
        last = int(np.lexsort((values, times, steps))[-1])
        conn.execute(SqlLatestMetric.__table__.insert(), [metric_row(
            run_id, key, float(values[last]), int(times[last]), int(steps[last]))])


def check(client: MlflowClient, store: SqlAlchemyStore, experiments: dict[str, str],
          by_experiment: dict[str, list[dict]], ids: dict[str, str]) -> None:
    """Every exported run comes back from MLflow's search with its params, user tags and
    latest metric values; bulk runs carry the template's system tags and info fields."""
    for name, runs in by_experiment.items():
        found, token = {}, None
        while True:
            page = client.search_runs([experiments[name]], max_results=50_000, page_token=token)
            found.update({r.info.run_id: r for r in page})
            token = page.token
            if not token:
                break
        if len(found) != len(runs):
            sys.exit(f"{name}: MLflow finds {len(found)} runs, {len(runs)} were exported")
        template = found[ids[runs[0]["id"]]]
        for run in runs:
            got = found[ids[run["id"]]]
            want_metrics = {p["key"]: p["value"] for p in latest(
                [metric_row("", *point) for point in run["metrics"]])}
            if run["history"]:
                want_metrics.pop(run["history"]["key"], None)
            problems = [
                what for what, bad in (
                    ("params", got.data.params != run["params"]),
                    ("tags", any(got.data.tags.get(k) != v for k, v in run["tags"].items())),
                    ("name", got.info.run_name != run["name"]),
                    ("status", got.info.status != run["status"]),
                    ("times", (got.info.start_time, got.info.end_time)
                     != (run["start_ms"], run["end_ms"])),
                    ("metrics", any(got.data.metrics.get(k) != v
                                    for k, v in want_metrics.items())),
                    ("system tags", {k for k in got.data.tags if k.startswith("mlflow.")}
                     != {k for k in template.data.tags if k.startswith("mlflow.")}),
                    ("info fields", {k for k, v in vars(got.info).items() if v is None}
                     != {k for k, v in vars(template.info).items() if v is None}))
                if bad]
            if problems:
                sys.exit(f"run {run['name']} ({got.info.run_id}) differs in MLflow: "
                         f"{', '.join(problems)}")
        for run in runs:
            if run["history"]:
                n = len(np.load(run["history"]["file"])["steps"])
                got = len(store.get_metric_history(ids[run["id"]], run["history"]["key"]))
                if got != n:
                    sys.exit(f"run {run['name']}: MLflow has {got} points of "
                             f"{run['history']['key']}, {n} were exported")
    print(f"checked through MlflowClient.search_runs: "
          f"{sum(len(r) for r in by_experiment.values()):,} runs in "
          f"{len(experiments)} experiments")


if __name__ == "__main__":
    main(*sys.argv[1:])
