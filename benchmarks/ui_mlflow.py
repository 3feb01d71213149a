"""MLflow's tracking server next to tympan's, on the same runs, in the same invocation of
benchmarks/ui.py (``--mlflow PYTHON``, a Python with a full MLflow: .venv-bench).

The runs are exported from the tympan store the UI benchmark filled (each project's oldest
``n`` runs: the sweep's first 10,000, the long run, the compared runs) with tympan's own
MLflow mapping (config -> dotted params, tags -> key[=value] tags) and each metric summary's
min, max and last points; the long run's whole history goes too. ``ui_mlflow_fill.py``
loads them into MLflow's SQLite store in the peer venv and checks them through MLflow's
client. A real ``mlflow server`` is then started on loopback and each request that has an
MLflow equivalent is timed on both servers, alternating request by request, over keep-alive
clients; the answers are compared (same runs, same number of points).

MLflow sorts and filters on a metric's latest value only, and compares params as strings
(=, !=, LIKE). In the sweep, ``KEY.min`` is the last value minus a constant (0.02 for
valid/wer) and lr is one of 1e-2, 1e-3, 1e-4, so tympan's ``valid/wer.min < 0.3 and
optim.lr >= 1e-3`` and MLflow's ``metrics.valid/wer < 0.32 and params.optim.lr != '0.0001'``
select the same runs, which the answer check confirms.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from tympan.integrations.mlflow_tracking import STATUS_OUT, label_tag, params_of
from tympan.store import metrics, open_store, projects, runs, summaries

FILL = Path(__file__).with_name("ui_mlflow_fill.py")
SEARCH = "/api/2.0/mlflow/runs/search"
INTERVAL = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"  # what MLflow's charts ask
HISTORY = "/api/2.0/mlflow/metrics/get-history"
BUDGET_S = 20.0  # per pair, warm-ups included, once 3 requests were timed


@dataclass(frozen=True)
class Pair:
    """One request to tympan's server and its MLflow equivalent."""

    label: str
    tympan: tuple[str, dict]  # GET path, query
    mlflow: tuple[str, str, dict]  # method, path, JSON body (POST) or query (GET)
    answer: Callable[[dict], list | int]  # what the answer holds, to compare the servers
    requests: int | None = None  # fewer than --requests for very large answers
    warmups: int = 3


def run_names(body: dict) -> list:
    return [r["name"] if "name" in r else r["info"]["run_name"] for r in body.get("runs", [])]


def point_count(body: dict) -> int:
    """Points a chart got (each server downsamples its own way, so only the count compares)."""
    return len(body["x"]) if "x" in body else len(body.get("metrics", []))


def pairs(sweep: str, long_tympan: str, long_mlflow: str, points: int) -> list[Pair]:
    page = {"experiment_ids": [sweep], "max_results": 50}
    wer = ["metrics.`valid/wer` ASC"]
    window = {"start": points // 2, "end": points // 2 + points // 100}
    return [
        Pair("sweep runs, first page (50)", ("/api/runs", {"project": "sweep", "limit": 50}),
             ("POST", SEARCH, page), run_names),
        Pair("sorted by valid/wer.min (MLflow: valid/wer)",
             ("/api/runs", {"project": "sweep", "limit": 50, "sort": "valid/wer.min"}),
             ("POST", SEARCH, page | {"order_by": wer}), run_names),
        Pair("filter model.encoder = gru, sort by valid/wer.min",
             ("/api/runs", {"project": "sweep", "limit": 50, "where": "model.encoder = gru",
                            "sort": "valid/wer.min"}),
             ("POST", SEARCH, page | {"filter": "params.`model.encoder` = 'gru'",
                                      "order_by": wer}), run_names),
        Pair("filter valid/wer.min < 0.3 and optim.lr >= 1e-3, sort by valid/cer",
             ("/api/runs", {"project": "sweep", "limit": 50, "sort": "valid/cer.last",
                            "where": "valid/wer.min < 0.3 and optim.lr >= 1e-3"}),
             ("POST", SEARCH, page | {
                 "filter": "metrics.`valid/wer` < 0.32 and params.`optim.lr` != '0.0001'",
                 "order_by": ["metrics.`valid/cer` ASC"]}), run_names),
        Pair(f"metric chart, {points:,} points -> 1,500",
             (f"/api/runs/{long_tympan}/metrics/train/loss", {"points": 1500}),
             ("GET", INTERVAL, {"run_ids": long_mlflow, "metric_key": "train/loss",
                                "max_results": 1500}), point_count),
        Pair("metric chart zoomed to 1%",
             (f"/api/runs/{long_tympan}/metrics/train/loss", {"points": 1500, **window}),
             ("GET", INTERVAL, {"run_ids": long_mlflow, "metric_key": "train/loss",
                                "max_results": 1500, "start_step": window["start"],
                                "end_step": window["end"]}), point_count),
        Pair(f"get-history, all {points:,} points (MLflow's REST API on both)",
             (HISTORY, {"run_id": long_tympan, "metric_key": "train/loss"}),
             ("GET", HISTORY, {"run_id": long_mlflow, "metric_key": "train/loss"}),
             lambda body: [int(m["step"]) for m in body.get("metrics", [])],
             requests=1, warmups=0),  # 132 MB of JSON from MLflow: minutes a request
    ]


def against_mlflow(python: str, where: str, long_id: str, tympan: httpx.Client, n: int,
                   requests: int, points: int, out: Console, folder: Path) -> None:
    """Fill (once) and start MLflow's server, time each pair on both servers, print them."""
    db, ids = filled(python, where, long_id, n, folder, out)
    rows = []
    with mlflow_server(python, db, folder) as base, httpx.Client(base_url=base,
                                                                 timeout=300) as mlflow:
        for pair in pairs(ids["experiments"]["sweep"], long_id, ids["runs"][long_id], points):
            rows.append(time_pair(pair, tympan, mlflow, pair.requests or requests))
    table = Table(title=f"tympan vs MLflow {mlflow_version(python)} server, same runs "
                        f"({n:,} in the sweep), alternating requests", title_justify="left")
    for name in ("request", "tympan p50", "p95", "MLflow p50", "p95", "MLflow/tympan p50",
                 "same answer"):
        table.add_column(name, justify="left" if name in ("request", "same answer") else "right")
    for label, n_req, ours, theirs, same in rows:
        table.add_row(f"{label} [{n_req}]", f"{statistics.median(ours):.1f}",
                      f"{p95(ours):.1f}", f"{statistics.median(theirs):.1f}", f"{p95(theirs):.1f}",
                      f"{statistics.median(theirs) / statistics.median(ours):.1f}x", same)
    out.print(table)


def time_pair(pair: Pair, tympan: httpx.Client, mlflow: httpx.Client,
              n: int) -> tuple[str, int, list[float], list[float], str]:
    """Up to ``n`` requests to each server, alternating, after the pair's warm-ups; fewer
    (at least 3) once the pair has taken BUDGET_S, since one of MLflow's takes seconds."""
    method, path, payload = pair.mlflow

    def ours() -> httpx.Response:
        return tympan.get(pair.tympan[0], params=pair.tympan[1])

    def theirs() -> httpx.Response:
        if method == "POST":
            return mlflow.post(path, json=payload)
        return mlflow.get(path, params=payload)

    start = time.perf_counter()
    for _ in range(pair.warmups):
        ours().raise_for_status()
        theirs().raise_for_status()
    times: tuple[list[float], list[float]] = ([], [])
    answers = []
    while len(times[1]) < n and (len(times[1]) < 3 or time.perf_counter() - start < BUDGET_S):
        answers = []
        for ask, kept in ((ours, times[0]), (theirs, times[1])):
            t0 = time.perf_counter()
            response = ask()
            kept.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
            answers.append(pair.answer(response.json()))
    return pair.label, len(times[1]), times[0], times[1], same_answer(*answers)


def same_answer(ours: list | int, theirs: list | int) -> str:
    if isinstance(ours, int) or isinstance(theirs, int):
        return f"{ours:,} vs {theirs:,} points"
    if ours == theirs:
        return f"yes ({len(ours):,})"
    if set(ours) == set(theirs):
        return f"same {len(ours):,}, other order"
    return f"NO: {len(ours):,} vs {len(theirs):,}, {len(set(ours) & set(theirs)):,} shared"


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def filled(python: str, where: str, long_id: str, n: int, folder: Path,
           out: Console) -> tuple[str, dict]:
    """(MLflow's store URI, the ids the fill wrote): filled from the tympan store once, and
    again when that store was filled again (another long run) or n changed."""
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "mlflow.db"
    ids_file = folder / "ids.json"
    stamp = folder / "filled-from"
    if stamp.exists() and stamp.read_text() == f"{long_id} {n}" and ids_file.exists():
        out.print(f"reusing MLflow's store at {db_path}")
        return f"sqlite:///{db_path}", json.loads(ids_file.read_text())
    for old in (db_path, ids_file, stamp):
        old.unlink(missing_ok=True)
    t0 = time.perf_counter()
    exported = export_runs(where, long_id, n, folder)
    t1 = time.perf_counter()
    done = subprocess.run([python, str(FILL), str(exported), f"sqlite:///{db_path}",
                           str(folder / "artifacts"), str(ids_file)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"filling MLflow's store failed:\n{done.stderr[-3000:]}")
    stamp.write_text(f"{long_id} {n}")
    report = "; ".join(done.stdout.strip().splitlines())  # its phases' seconds, its check
    out.print(f"MLflow's store filled in {time.perf_counter() - t1:.1f} s (export from tympan "
              f"{t1 - t0:.1f} s): {report}")
    return f"sqlite:///{db_path}", json.loads(ids_file.read_text())


def export_runs(where: str, long_id: str, n: int, folder: Path) -> Path:
    """Each project's oldest ``n`` runs as ui_mlflow_fill.py reads them; the long run's
    train/loss history in full."""
    path = folder / "runs.jsonl"
    with open_store(where) as store, store.read() as conn, open(path, "w") as out:
        for project_id, project in sorted(projects.names(conn).items()):
            chosen = runs.query(conn, project_ids=[project_id])[::-1][:n]  # oldest first
            summary = summaries.for_runs(conn, [r.id for r in chosen])
            for row in chosen:
                history = None
                if row.id == long_id:
                    series = metrics.read(conn, row.id, "train/loss")
                    np.savez(folder / "history.npz", steps=series.steps, values=series.values,
                             times_ms=(series.times * 1000).astype(np.int64))
                    history = {"key": "train/loss", "file": str(folder / "history.npz")}
                out.write(json.dumps({
                    "experiment": project, "id": row.id, "name": row.name,
                    "status": STATUS_OUT[row.status], "start_ms": ms(row.started_at),
                    "end_ms": ms(row.ended_at), "params": params_of(row.config),
                    "tags": dict(label_tag(t) for t in row.tags),
                    "metrics": summary_points(summary[row.id], row.started_at),
                    "history": history}) + "\n")
    return path


def summary_points(summary: dict, started_at: float) -> list[list]:
    """A run's metrics as MLflow points: each summary's min, max and last, at their steps."""
    points = []
    for key, s in sorted(summary.items()):
        seen = {(s.min_step, s.min), (s.max_step, s.max), (s.last_step, s.last)}
        points += [[key, value, ms(started_at) + step, step] for step, value in sorted(seen)
                   if step is not None and value is not None]
    return points


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def mlflow_version(python: str) -> str:
    return subprocess.run([python, "-c", "import mlflow; print(mlflow.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def mlflow_server(python: str, db: str, folder: Path) -> Iterator[str]:
    """``mlflow server`` on loopback over ``db`` (one worker, as tympan's one process):
    its base URL, until the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [python, "-m", "mlflow", "server", "--backend-store-uri", db, "--host",
             "127.0.0.1", "--port", str(port), "--workers", "1",
             "--default-artifact-root", str(folder / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"mlflow server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the workers go with it
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
