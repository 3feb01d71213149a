"""Web UI and API server time: the runs table of 10,000 runs, a 1,000,000-point metric, a
compare of 20 runs, each measured as p50/p95 over N requests to a real server process.

The store is filled through the store layer (runs, configs and summaries of 10,000 runs in
one transaction) and the tracking API (a run with 1,000,000 points of ``train/loss``; 20 runs
with 2 metrics and an audio sample each, to compare). Then ``tympan ui --port 0`` is started
as a subprocess and each request is timed over loopback with a keep-alive HTTP client, after
3 warm-up requests. Target (issue 6): p95 <= 300 ms for each figure.

    .venv/bin/python benchmarks/ui.py [--runs 10000] [--points 1000000] [--requests 50]
                                      [--store PATH] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/logging.py would shadow the stdlib `logging` that SQLAlchemy imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import tympan  # noqa: E402
from tympan.store import open_store, projects, runs, summaries  # noqa: E402
from tympan.store.summaries import Summary  # noqa: E402
from tympan.track.naming import new_run_id  # noqa: E402
from tympan.track.stores import close_stores  # noqa: E402

TARGET_MS = 300.0
ENCODERS = ("gru", "lstm", "conformer", "transformer")
ATTENTION = ("none", "local", "global")


def fill_runs(where: str, n: int) -> None:
    """n finished runs of project 'sweep' with nested configs, tags and 4 metric summaries."""
    rng = np.random.default_rng(0)
    t0 = time.time() - n * 60.0
    with open_store(where, create=True) as store, store.write() as conn:
        project_id = projects.ensure(conn, "sweep", t0)
        for i in range(n):
            run_id = new_run_id()
            started = t0 + i * 60.0
            config = {"model": {"encoder": ENCODERS[i % 4], "attention": ATTENTION[i % 3],
                                "layers": 2 + i % 6, "dim": 128 * (1 + i % 3)},
                      "optim": {"lr": float(10 ** -(2 + i % 3)), "warmup": 500 * (i % 4)},
                      "data": {"train": "librispeech-100", "augment": bool(i % 2)},
                      "seed": i % 5}
            runs.insert(conn, id=run_id, project_id=project_id, name=f"sweep-{i:05d}",
                        status="finished", created_at=started, started_at=started,
                        ended_at=started + 3000.0, heartbeat_at=started + 3000.0,
                        config=config, tags=["sweep", f"wave{i % 10}"], note="",
                        parent_id=None, study_id=None, host="bench", pid=1, seed=i % 5,
                        env_id=None, error=None)
            wer = float(0.3 + 0.1 * rng.random())
            summaries.upsert(conn, run_id, {
                "train/loss": Summary(0.5 * wer, 10_000, 0.4 * wer, 9_000, 3.0, 0, 10_001),
                "valid/wer": Summary(wer, 10_000, wer - 0.02, 8_000, 0.9, 0, 21),
                "valid/cer": Summary(wer / 3, 10_000, wer / 3 - 0.01, 8_000, 0.5, 0, 21),
                "lr": Summary(1e-4, 10_000, 1e-5, 0, 1e-3, 500, 10_001),
            }, started)


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
    log_path = Path(where).parent / "server.log"
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
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the runs table")
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the long metric")
    parser.add_argument("--compare", type=int, default=20, help="runs in the compare")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per figure")
    parser.add_argument("--store", help="store folder to (re)use (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 100,000 points")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.points, args.requests = 1000, 100_000, 20
    out = Console()
    os.environ.setdefault("TYMPAN_CAPTURE_ENV", "0")
    where = args.store or str(Path(tempfile.mkdtemp(prefix="tympan-bench-ui-")) / "store")
    marker = Path(where) / f"bench-{args.runs}-{args.points}-{args.compare}.ids"
    if marker.exists():
        long_id, *compare_ids = marker.read_text().split()
        out.print(f"reusing the store at {where}")
    else:
        t0 = time.perf_counter()
        fill_runs(where, args.runs)
        t1 = time.perf_counter()
        long_id = long_run(where, args.points)
        t2 = time.perf_counter()
        compare_ids = compare_runs(where, args.compare)
        close_stores()
        marker.write_text(" ".join([long_id, *compare_ids]))
        out.print(f"store filled in {time.perf_counter() - t0:.1f} s ({args.runs:,} runs in "
                  f"{t1 - t0:.1f} s, {args.points:,} points in {t2 - t1:.1f} s)")
    proc, url, token = start_server(where)
    try:
        with httpx.Client(base_url=url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            figures = [
                ("runs table, first page (50 of all runs)", "/api/runs", {"limit": 50}),
                ("runs table sorted by valid/wer.min", "/api/runs",
                 {"limit": 50, "sort": "valid/wer.min"}),
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
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    table = Table(title=f"tympan ui server time over loopback ({args.requests} requests each, "
                        f"{total:,} runs in the store)", title_justify="left")
    for name, justify in (("request", "left"), ("p50 ms", "right"), ("p95 ms", "right"),
                          ("max ms", "right"), ("target", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for label, p50, p95_ms, worst in rows:
        verdict = "PASS" if p95_ms <= TARGET_MS else "MISS"
        table.add_row(label, f"{p50:.1f}", f"{p95_ms:.1f}", f"{worst:.1f}",
                      f"p95 <= {TARGET_MS:.0f} ms: {verdict}")
    out.print(table)
    return 0 if all(r[2] <= TARGET_MS for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
