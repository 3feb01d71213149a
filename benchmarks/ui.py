"""Web UI and API server time: the runs table of 100,000 runs (first page, a config filter
and a metric filter with a metric sort, a group-by of 3 config keys), a 1,000,000-point
metric, a compare of 20 runs, each measured as p50/p95 over N requests to a real server
process; with ``--browser``, the time a real Chromium takes to render the runs page.

The store is filled through the store layer (runs, configs and summaries bulk-inserted in
transactions of 10,000 runs) and the tracking API (a run with 1,000,000 points of
``train/loss``; 20 runs with 2 metrics and an audio sample each, to compare), once per size:
later invocations reuse it (benchmarks/.out/ui/, or the PostgreSQL database
``tympan_bench_ui_<size>`` with ``--pg``) until ``--fresh``. Then ``tympan ui --port 0`` is
started as a subprocess and each request is timed over loopback with a keep-alive HTTP
client, after 3 warm-up requests. With ``--mlflow PYTHON`` (a full MLflow with its server:
.venv-bench), MLflow's server gets the same runs (the sweep's first 10,000) and each request
it has an equivalent for is timed on both servers, alternating (benchmarks/ui_mlflow.py).
Targets (issues 6 and 17): p95 <= 300 ms for each figure, and the runs page rendered in <= 1 s.

    .venv/bin/python benchmarks/ui.py [--runs 100000] [--points 1000000] [--requests 50]
                                      [--store PATH] [--pg] [--browser] [--quick] [--fresh]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

# benchmarks/logging.py would shadow the stdlib `logging` that SQLAlchemy imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))  # ui_mlflow, after the stdlib

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from ui_mlflow import against_mlflow  # noqa: E402

import tympan  # noqa: E402
from tympan.store import open_store, projects, runs, summaries, upgrade_store  # noqa: E402
from tympan.store.summaries import Summary  # noqa: E402
from tympan.track.naming import new_run_id  # noqa: E402
from tympan.track.stores import close_stores  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".out" / "ui"  # filled stores, reused between invocations
TARGET_MS = 300.0
BROWSER_TARGET_MS = 1000.0
ENCODERS = ("gru", "lstm", "conformer", "transformer")
ATTENTION = ("none", "local", "global")


def fill_runs(where: str, n: int) -> None:
    """n finished runs of project 'sweep' with nested configs, tags and 4 metric summaries,
    bulk-inserted through the store layer in transactions of 10,000 runs."""
    for start in range(0, n, 10_000):
        _fill_runs(where, start, min(n, start + 10_000), n)


def _fill_runs(where: str, first: int, end: int, n: int) -> None:
    rng = np.random.default_rng(first)
    t0 = time.time() - n * 60.0
    rows, metrics = [], {}
    for i in range(first, end):
        run_id = new_run_id()
        started = t0 + i * 60.0
        # attention by i // 12: independent of encoder (i % 4) and lr (i % 3), so grouping by
        # the three makes the sweep's 36 groups
        config = {"model": {"encoder": ENCODERS[i % 4], "attention": ATTENTION[i // 12 % 3],
                            "layers": 2 + i % 6, "dim": 128 * (1 + i % 3)},
                  "optim": {"lr": float(10 ** -(2 + i % 3)), "warmup": 500 * (i % 4)},
                  "data": {"train": "librispeech-100", "augment": bool(i % 2)},
                  "seed": i % 5}
        rows.append(dict(id=run_id, name=f"sweep-{i:05d}", status="finished",
                         created_at=started, started_at=started, ended_at=started + 3000.0,
                         heartbeat_at=started + 3000.0, config=config,
                         tags=["sweep", f"wave{i % 10}"], note="", parent_id=None,
                         study_id=None, host="bench", pid=1, seed=i % 5, env_id=None,
                         error=None))
        wer = float(0.3 + 0.1 * rng.random())
        metrics[run_id] = {
            "train/loss": Summary(0.5 * wer, 10_000, 0.4 * wer, 9_000, 3.0, 0, 10_001),
            "valid/wer": Summary(wer, 10_000, wer - 0.02, 8_000, 0.9, 0, 21),
            "valid/cer": Summary(wer / 3, 10_000, wer / 3 - 0.01, 8_000, 0.5, 0, 21),
            "lr": Summary(1e-4, 10_000, 1e-5, 0, 1e-3, 500, 10_001),
        }
    with open_store(where, create=True) as store, store.write() as conn:
        project_id = projects.ensure(conn, "sweep", t0)
        runs.insert_many(conn, [row | {"project_id": project_id} for row in rows])
        summaries.upsert_many(conn, metrics, t0 + end * 60.0)


def long_run(where: str, points: int) -> str:
    run = tympan.init(project="long", name="million-points", store=where,
                      config={"steps": points})
    noise = np.random.default_rng(1).normal(0, 0.02, points)
    for step in range(points):
        run.log({"train/loss": 2.0 / (1 + step / 1000) + noise[step]}, step=step)
    run.finish()
    return run.id


def compare_runs(where: str, n: int) -> list[str]:
    ids = []
    t = np.arange(8000) / 16000
    for i in range(n):
        run = tympan.init(project="compare", name=f"arm-{i}", store=where,
                          config={"model": {"encoder": ENCODERS[i % 4]}, "seed": i % 5,
                                  "lr": 1e-3 * (1 + i % 3)})
        for step in range(2000):
            run.log({"train/loss": 1 / (1 + step / 100) + 0.01 * i,
                     "valid/wer": 0.3 - step / 20000 + 0.005 * i}, step=step)
        tone = (0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t)).astype(np.float32)
        run.log_audio("eval/utt1", tone, 16000, step=1999, caption=f"arm {i}")
        run.finish()
        ids.append(run.id)
    return ids


def start_server(where: str) -> tuple[subprocess.Popen, str, str]:
    """`tympan ui` over ``where``: the process, its base URL and its launch token."""
    log_path = CACHE / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "tympan.cli.app", "ui", "--store", where,
                                 "--port", "0", "--no-open"], stdout=subprocess.PIPE,
                                stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r" at (http://\S+)/\?token=(\S+) ", line)  # `tympan ui`'s sign-in link
    if not found:
        proc.kill()
        raise SystemExit(f"server did not start: {line}{log_path.read_text()}")
    return proc, found.group(1), found.group(2)


def measure(client: httpx.Client, path: str, params: dict, n: int) -> list[float]:
    for _ in range(3):
        client.get(path, params=params).raise_for_status()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    return times


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the runs table")
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the long metric")
    parser.add_argument("--compare", type=int, default=20, help="runs in the compare")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per figure")
    parser.add_argument("--store", help="SQLite store folder to fill once and reuse "
                        "(default: one under benchmarks/.out/ui/)")
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 100,000 points")
    parser.add_argument("--pg", action="store_true",
                        help="a PostgreSQL database (TYMPAN_TEST_PG's server, kept) instead "
                             "of a SQLite file")
    parser.add_argument("--browser", action="store_true",
                        help="also time a headless Chromium rendering the runs page")
    parser.add_argument("--mlflow", metavar="PYTHON",
                        help="a Python with MLflow's server (.venv-bench/bin/python from "
                             "benchmarks/setup-bench.sh; .venv-mlflow's mlflow-skinny has no "
                             "server): also time MLflow's server on the same runs (the "
                             "sweep's first 10,000), alternating with tympan's")
    parser.add_argument("--fresh", action="store_true",
                        help="fill the stores again instead of reusing the cached ones")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.points, args.requests = 1000, 100_000, 20
    return run(args)


def cached_store(args: argparse.Namespace, out: Console) -> tuple[str, str, list[str]]:
    """(the store, the long run's id, the compared runs' ids): filled once per size (under
    benchmarks/.out/ui/, or in a PostgreSQL database named after the size with --pg) and
    reused by later invocations until --fresh."""
    size = f"{args.runs}-{args.points}-{args.compare}"
    if args.pg:
        marker = CACHE / f"pg-{size}.ids"
        where, existed = pg_database(f"tympan_bench_ui_{size.replace('-', '_')}", args.fresh)
    else:
        where = args.store or str(CACHE / f"sqlite-{size}")
        marker, existed = Path(where) / f"bench-{size}.ids", not args.fresh
    if existed and marker.exists():
        long_id, *compare_ids = marker.read_text().split()
        before, after, _ = upgrade_store(where)  # a store kept from an older tympan
        migrated = f", migrated from revision {before} to {after}" if before != after else ""
        out.print(f"reusing the store at {where} (--fresh fills it again{migrated})")
        return where, long_id, compare_ids
    if args.pg:
        where, _ = pg_database(f"tympan_bench_ui_{size.replace('-', '_')}", fresh=True)
    elif Path(where).exists():
        shutil.rmtree(where)
    t0 = time.perf_counter()
    fill_runs(where, args.runs)
    t1 = time.perf_counter()
    long_id = long_run(where, args.points)
    t2 = time.perf_counter()
    compare_ids = compare_runs(where, args.compare)
    close_stores()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(" ".join([long_id, *compare_ids]))
    out.print(f"store filled in {time.perf_counter() - t0:.1f} s ({args.runs:,} runs in "
              f"{t1 - t0:.1f} s, {args.points:,} points in {t2 - t1:.1f} s)")
    return where, long_id, compare_ids


def pg_database(name: str, fresh: bool) -> tuple[str, bool]:
    """(the URL of database ``name`` on TYMPAN_TEST_PG's server, whether it was there
    already); created if missing, dropped first if ``fresh``."""
    import psycopg

    admin = os.environ.get("TYMPAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        existed = bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                    (name,)).fetchone())
        if not existed:
            conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", existed


def run(args: argparse.Namespace) -> int:
    out = Console()
    os.environ.setdefault("TYMPAN_CAPTURE_ENV", "0")
    where, long_id, compare_ids = cached_store(args, out)
    proc, url, token = start_server(where)
    try:
        with httpx.Client(base_url=url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            figures = [
                ("runs table, first page (50 of all runs)", "/api/runs", {"limit": 50}),
                ("runs table sorted by valid/wer.min", "/api/runs",
                 {"limit": 50, "sort": "valid/wer.min"}),
                ("filter model.encoder = gru, sort by valid/wer.min", "/api/runs",
                 {"limit": 50, "where": "model.encoder = gru", "sort": "valid/wer.min"}),
                ("filter valid/wer.min < 0.3 and lr >= 1e-3, sort by valid/cer.max",
                 "/api/runs", {"limit": 50, "project": "sweep", "sort": "valid/cer.max",
                               "where": "valid/wer.min < 0.3 and optim.lr >= 1e-3"}),
                ("group by 3 config keys, mean and CI of valid/wer.min", "/api/runs/groups",
                 {"project": "sweep", "by": "model.encoder,model.attention,optim.lr",
                  "metric": "valid/wer.min"}),
                (f"run page metric ({args.points:,} points -> 1,500)",
                 f"/api/runs/{long_id}/metrics/train/loss", {"points": 1500}),
                ("run page metric, zoomed to 1% (full fidelity)",
                 f"/api/runs/{long_id}/metrics/train/loss",
                 {"points": 1500, "start": args.points // 2,
                  "end": args.points // 2 + args.points // 100}),
                (f"compare of {len(compare_ids)} runs", "/api/compare",
                 {"runs": ",".join(compare_ids)}),
            ]
            total = client.get("/api/runs", params={"limit": 1}).json()["total"]
            rows = []
            for label, path, params in figures:
                times = measure(client, path, params, args.requests)
                rows.append((label, statistics.median(times), p95(times), max(times)))
            grouped = client.get("/api/runs/groups", params=figures[4][2])
            out.print(f"group-by answer: {len(grouped.content) / 1e6:.2f} MB, "
                      f"{len(grouped.json()['groups'])} groups")
            if args.mlflow:
                against_mlflow(args.mlflow, where, long_id, client, min(args.runs, 10_000),
                               args.requests, args.points, out, CACHE / "mlflow")
        if args.browser:
            times = browser_render(url, token, args.requests // 2 or 1)
            rows.append(("browser: runs page rendered (navigation to table rows)",
                         statistics.median(times), p95(times), max(times)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    table = Table(title=f"tympan ui server time over loopback ({args.requests} requests each, "
                        f"{total:,} runs in the store)", title_justify="left")
    for name, justify in (("request", "left"), ("p50 ms", "right"), ("p95 ms", "right"),
                          ("max ms", "right"), ("target", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    met = True
    for label, p50, p95_ms, worst in rows:
        target = BROWSER_TARGET_MS if label.startswith("browser") else TARGET_MS
        met = met and p95_ms <= target
        verdict = "PASS" if p95_ms <= target else "MISS"
        table.add_row(label, f"{p50:.1f}", f"{p95_ms:.1f}", f"{worst:.1f}",
                      f"p95 <= {target:.0f} ms: {verdict}")
    out.print(table)
    return 0 if met else 1


def browser_render(url: str, token: str, n: int) -> list[float]:
    """Milliseconds from navigation start until the runs page shows its table rows, in a
    headless Chromium signed in with the launch token (n loads after 2 warm-ups)."""
    from selenium import webdriver
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options)
    try:
        driver.get(f"{url}/?token={token}")
        times = []
        for i in range(n + 2):
            driver.get("about:blank")
            driver.get(f"{url}/runs?project=sweep")
            WebDriverWait(driver, 30, poll_frequency=0.01).until(
                lambda d: d.find_elements("css selector", ".runs-table tbody tr"))
            shown = driver.execute_script("return performance.now()")
            if i >= 2:
                times.append(float(shown))
        return times
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
