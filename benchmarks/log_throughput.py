"""Logging benchmark: tympan against MLflow (SQLite), W&B (offline) and Aim, same run.

    bash benchmarks/setup-bench.sh                         # .venv-bench: tympan + peers
    .venv-bench/bin/python benchmarks/log_throughput.py           # full run (several minutes)
    .venv-bench/bin/python benchmarks/log_throughput.py --quick   # 10x smaller loops, smoke test
    .venv-bench/bin/python benchmarks/log_throughput.py --only tympan,mlflow --figures caller,read

Figures (one table each; ratios are measured in this run, never hard-coded):
  caller  caller-thread cost per logged scalar, microseconds: median over 5 repeats of a
          loop logging one scalar per call with an explicit step.
  ingest  sustained durable ingest, points/s: from the first log call until finish()/
          end()/close() returns. 10 keys per call (MLflow: log_batch of 1,000 metrics, its
          fastest path). tympan also on PostgreSQL when 127.0.0.1:5432 answers (a fresh
          database is created and dropped).
  read    one metric's full history, ms, median of 5 (fewer past 60 s). 1,000,000 points
          for tympan; MLflow and Aim write ~100-400x slower, so they get 100,000 and 50,000
          points and the ratio is taken per point (reads scale linearly). W&B offline
          has no read API.
  import  `python -c "import X"` wall time minus `python -c "pass"`, median of 7.

Each tool's measurement runs in a subprocess of this script (``--worker TOOL --figure
FIG``, printing one JSON result line) in its own temporary directory, so tools' import
side effects and background threads never meet. Interpreter per tool: ``.venv-TOOL/bin/
python`` at the repository root when it exists (setup-bench.sh puts Aim in .venv-aim if
it ever stops co-installing), otherwise the interpreter running this script. A tool that
its interpreter cannot import is reported as "not installed" and skipped, so the script
also runs with tympan alone. Peers' background system-metrics sampling (W&B stats, Aim
system tracking) is switched off, and their telemetry too: this measures logging only.
Temporary stores go under $TMPDIR. Tables are also written to benchmarks/.out/log_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# This file shares its name with the stdlib `logging`: keep its folder from shadowing it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.append(str(HERE))

from _common import (  # noqa: E402
    Result,
    Target,
    emit,
    fmt_num,
    has_module,
    machine_info,
    measure_import,
    median,
    progress,
    python_for,
    render_table,
    spawn_worker,
)

ROOT = HERE.parent
SCRIPT = Path(__file__).resolve()
OUT = HERE / ".out" / "log_throughput.json"
TOOLS = ("tympan", "mlflow", "wandb", "aim")
FIGURES = ("caller", "ingest", "read", "import")
K = 10  # keys per log call in the ingest workload
REPEATS = 5  # caller and read repeats
IMPORT_REPEATS = 7
READ_BUDGET_S = 60.0  # stop repeating a read once this much time went into it

# Workload sizes per tool, chosen so each peer's part stays under ~20 s here.
CALLER_CALLS = {"tympan": 200_000, "mlflow": 200, "wandb": 5_000, "aim": 10_000}  # per repeat
INGEST_POINTS = {"tympan": 2_000_000, "mlflow": 100_000, "wandb": 200_000, "aim": 50_000}
READ_POINTS = {"tympan": 1_000_000, "mlflow": 100_000, "aim": 50_000}

TARGETS = {
    "caller": Target("<= 2 us/scalar", lambda v: v <= 2.0),
    "ingest": Target(">= 1,000,000 pts/s", lambda v: v >= 1_000_000),
    "ingest-pg": Target(">= 300,000 pts/s", lambda v: v >= 300_000),
    "read": Target("<= 50 ms per 1M pts", lambda v: v <= 50.0),
    "read-pg": Target("<= 50 ms per 1M pts", lambda v: v <= 50.0),
    "import": Target("<= 150 ms", lambda v: v <= 150.0),
}
TITLES = {
    "caller": "(a) caller-thread cost per logged scalar (lower is better)",
    "ingest": "(b) sustained durable ingest, 10 keys per call (higher is better)",
    "read": "(c) read one metric's full history (lower is better)",
    "import": "(d) import time (lower is better)",
}
TYMPAN_LABELS = {
    "ingest": "tympan (SQLite)",
    "ingest-pg": "tympan (PostgreSQL)",
    "read": "tympan (SQLite)",
    "read-pg": "tympan (PostgreSQL)",
}

# Quiet peers' telemetry, banners and background sampling in every worker.
WORKER_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "WANDB_SILENT": "true",
    "WANDB_MODE": "offline",
    "AIM_UI_TELEMETRY_ENABLED": "0",
}

Worker = Callable[[int, Path, bool], Result]


# --------------------------------------------------------------------------- tympan


def _tympan_init(name: str, store: str, config: dict[str, Any]) -> Any:
    import tympan

    return tympan.init(project="bench", name=name, config=config, store=store)


# Each tool's timed loop is written out inline rather than shared through a callback: a
# call per iteration would add a large share of the ~1 us being measured for tympan.
def tympan_caller(n: int, tmp: Path, quick: bool) -> Result:
    run = _tympan_init("caller", str(tmp / "store"), {"calls": n})
    samples = []
    for r in range(REPEATS):
        t0 = time.perf_counter_ns()
        for i in range(r * n, (r + 1) * n):
            run.log({"loss": 0.5 + i * 1e-7}, step=i)
        samples.append((time.perf_counter_ns() - t0) / n / 1e3)
    run.finish()
    return _caller_result("tympan", n, samples, "run.log({'loss': x}, step=i)")


def _tympan_ingest(n: int, store: str, figure: str) -> Result:
    import tympan

    keys = [f"m{j}" for j in range(K)]
    calls = n // K
    run = _tympan_init("ingest", store, {"points": n, "keys": K})
    t0 = time.perf_counter()
    for i in range(calls):
        v = i * 1e-3
        run.log({k: v for k in keys}, step=i)
    t_loop = time.perf_counter()
    run.finish()
    t_end = time.perf_counter()
    # Untimed check that finish() really left every point readable.
    got = len(tympan.load_run(run.id, store=store).history("m0").values)
    if got != calls:
        raise RuntimeError(f"after finish(), m0 has {got} points, expected {calls}")
    return _ingest_result(
        "tympan", figure, n, t0, t_loop, t_end, "run.log(10 keys) + finish(); count checked"
    )


def tympan_ingest(n: int, tmp: Path, quick: bool) -> Result:
    return _tympan_ingest(n, str(tmp / "store"), "ingest")


@contextmanager
def _fresh_pg_database() -> Iterator[tuple[str | None, str]]:
    """(URL of a new database, "") or (None, why not); the database is dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        yield None, "psycopg not installed"
        return
    admin, user, errors = None, "", []
    for user in ("postgres", "root"):
        try:
            admin = psycopg.connect(
                f"host=127.0.0.1 port=5432 user={user} dbname=postgres",
                autocommit=True,
                connect_timeout=3,
            )
            break
        except psycopg.Error as e:
            errors.append(f"{user}: {str(e).strip().splitlines()[0]}")
    if admin is None:
        yield None, "PostgreSQL at 127.0.0.1:5432 unreachable (" + "; ".join(errors) + ")"
        return
    db = f"tympan_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{db}"')
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:5432/{db}", ""
    finally:
        from tympan.track.stores import close_stores

        close_stores()
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


def tympan_ingest_pg(n: int, tmp: Path, quick: bool) -> Result:
    with _fresh_pg_database() as (url, why_not):
        if url is None:
            return Result("tympan", "ingest-pg", "skipped", unit="pts/s", note=why_not)
        return _tympan_ingest(n, url, "ingest-pg")


def tympan_read_pg(n: int, tmp: Path, quick: bool) -> Result:
    with _fresh_pg_database() as (url, why_not):
        if url is None:
            return Result("tympan", "read-pg", "skipped", unit="ms", note=why_not)
        return _tympan_read(n, url, "read-pg")


def tympan_read(n: int, tmp: Path, quick: bool) -> Result:
    return _tympan_read(n, str(tmp / "store"), "read")


def _tympan_read(n: int, store: str, figure: str) -> Result:
    import tympan

    run = _tympan_init("read", store, {"points": n})
    for i in range(n):
        run.log({"loss": 0.5 + i * 1e-7}, step=i)
    run.finish()

    def read() -> int:
        rec = tympan.load_run(run.id, store=store)  # untimed: a fresh handle, no cache
        t0 = time.perf_counter_ns()
        h = rec.history("loss")
        elapsed = time.perf_counter_ns() - t0
        if len(h.steps) != n or len(h.values) != n or len(h.times) != n:
            raise RuntimeError(f"history('loss') has {len(h.values)} points, expected {n}")
        return elapsed

    return _read_result("tympan", n, read, "load_run(id).history('loss')", figure)


# --------------------------------------------------------------------------- MLflow


def _mlflow(tmp: Path) -> Any:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    return mlflow


def mlflow_caller(n: int, tmp: Path, quick: bool) -> Result:
    mlflow = _mlflow(tmp)
    samples = []
    with mlflow.start_run():
        for r in range(REPEATS):
            t0 = time.perf_counter_ns()
            for i in range(r * n, (r + 1) * n):
                mlflow.log_metric("loss", 0.5 + i * 1e-7, step=i)
            samples.append((time.perf_counter_ns() - t0) / n / 1e3)
    return _caller_result("mlflow", n, samples, "mlflow.log_metric('loss', x, step=i)")


def _mlflow_log_batches(client: Any, run_id: str, keys: list[str], n: int) -> None:
    """n points of `keys` in log_batch calls of 1,000 metrics, steps in order."""
    from mlflow.entities import Metric

    per_batch = 1000 // len(keys)  # steps per batch
    ts = int(time.time() * 1000)
    for start in range(0, n // len(keys), per_batch):
        metrics = [
            Metric(key=k, value=s * 1e-3, timestamp=ts, step=s)
            for s in range(start, start + per_batch)
            for k in keys
        ]
        client.log_batch(run_id, metrics=metrics)


def mlflow_ingest(n: int, tmp: Path, quick: bool) -> Result:
    mlflow = _mlflow(tmp)
    client = mlflow.MlflowClient()
    run = mlflow.start_run()
    t0 = time.perf_counter()
    _mlflow_log_batches(client, run.info.run_id, [f"m{j}" for j in range(K)], n)
    t_loop = time.perf_counter()
    mlflow.end_run()
    t_end = time.perf_counter()
    return _ingest_result(
        "mlflow", "ingest", n, t0, t_loop, t_end, "MlflowClient.log_batch(1,000) + end_run()"
    )


def mlflow_read(n: int, tmp: Path, quick: bool) -> Result:
    mlflow = _mlflow(tmp)
    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        _mlflow_log_batches(client, run.info.run_id, ["loss"], n)

    def read() -> int:
        t0 = time.perf_counter_ns()
        h = client.get_metric_history(run.info.run_id, "loss")
        elapsed = time.perf_counter_ns() - t0
        if len(h) != n:
            raise RuntimeError(f"get_metric_history returned {len(h)} points, expected {n}")
        return elapsed

    return _read_result("mlflow", n, read, "get_metric_history(run_id, 'loss')")


# --------------------------------------------------------------------------- W&B


def _wandb_run(tmp: Path) -> Any:
    import wandb

    settings = wandb.Settings(x_disable_stats=True, x_disable_machine_info=True, silent=True)
    return wandb.init(mode="offline", dir=str(tmp), project="bench", settings=settings)


def wandb_caller(n: int, tmp: Path, quick: bool) -> Result:
    run = _wandb_run(tmp)
    samples = []
    for r in range(REPEATS):
        t0 = time.perf_counter_ns()
        for i in range(r * n, (r + 1) * n):
            run.log({"loss": 0.5 + i * 1e-7}, step=i)
        samples.append((time.perf_counter_ns() - t0) / n / 1e3)
    run.finish()
    return _caller_result("wandb", n, samples, "offline run.log({'loss': x}, step=i)")


def wandb_ingest(n: int, tmp: Path, quick: bool) -> Result:
    keys = [f"m{j}" for j in range(K)]
    run = _wandb_run(tmp)
    t0 = time.perf_counter()
    for i in range(n // K):
        v = i * 1e-3
        run.log({k: v for k in keys}, step=i)
    t_loop = time.perf_counter()
    run.finish()
    t_end = time.perf_counter()
    return _ingest_result("wandb", "ingest", n, t0, t_loop, t_end, "offline run.log + finish()")


# --------------------------------------------------------------------------- Aim


def _aim_run(tmp: Path) -> Any:
    import aim

    return aim.Run(
        repo=str(tmp / "aim"),
        experiment="bench",
        system_tracking_interval=None,
        capture_terminal_logs=False,
    )


def aim_caller(n: int, tmp: Path, quick: bool) -> Result:
    run = _aim_run(tmp)
    samples = []
    for r in range(REPEATS):
        t0 = time.perf_counter_ns()
        for i in range(r * n, (r + 1) * n):
            run.track(0.5 + i * 1e-7, name="loss", step=i)
        samples.append((time.perf_counter_ns() - t0) / n / 1e3)
    run.close()
    return _caller_result("aim", n, samples, "run.track(x, name='loss', step=i)")


def aim_ingest(n: int, tmp: Path, quick: bool) -> Result:
    keys = [f"m{j}" for j in range(K)]
    run = _aim_run(tmp)
    t0 = time.perf_counter()
    for i in range(n // K):
        v = i * 1e-3
        run.track({k: v for k in keys}, step=i)
    t_loop = time.perf_counter()
    run.close()
    t_end = time.perf_counter()
    return _ingest_result("aim", "ingest", n, t0, t_loop, t_end, "run.track(dict) + close()")


def aim_read(n: int, tmp: Path, quick: bool) -> Result:
    import aim
    from aim.sdk.index_manager import RepoIndexManager
    from aim.storage.context import Context

    run = _aim_run(tmp)
    for i in range(n):
        run.track(0.5 + i * 1e-7, name="loss", step=i)
    run.close()
    run_hash = run.hash
    repo = aim.Repo(str(tmp / "aim"))
    # A closed run is readable once indexed; `aim up` indexes in the background. Untimed.
    RepoIndexManager.get_index_manager(repo).index(run_hash)

    def read() -> int:
        ro = aim.Run(run_hash=run_hash, repo=repo, read_only=True)  # untimed, no cache
        t0 = time.perf_counter_ns()
        steps, columns = ro.get_metric("loss", Context({})).data.numpy()
        elapsed = time.perf_counter_ns() - t0
        if len(steps) != n or len(columns[0]) != n:
            raise RuntimeError(f"metric 'loss' has {len(steps)} points, expected {n}")
        return elapsed

    return _read_result("aim", n, read, "get_metric('loss').data.numpy()")


# --------------------------------------------------------------------------- results


def _caller_result(tool: str, n: int, samples: list[float], how: str) -> Result:
    v = median(samples)
    note = f"{how}; {REPEATS} x {n:,} calls"
    return Result(
        tool, "caller", value=v, unit="us/scalar", points=n, norm=v, samples=samples, note=note
    )


def _ingest_result(
    tool: str, figure: str, n: int, t0: float, t_loop: float, t_end: float, how: str
) -> Result:
    rate = n / (t_end - t0)
    note = f"{how}; {n:,} pts: loop {t_loop - t0:.2f} s + finish {t_end - t_loop:.2f} s"
    return Result(tool, figure, value=rate, unit="pts/s", points=n, norm=rate, note=note)


def _read_result(
    tool: str, n: int, read: Callable[[], int], how: str, figure: str = "read"
) -> Result:
    samples: list[float] = []
    spent = 0.0
    for _ in range(REPEATS):  # bounded: at most REPEATS reads, fewer past READ_BUDGET_S
        ms = read() / 1e6
        samples.append(ms)
        spent += ms / 1e3
        if spent > READ_BUDGET_S:
            break
    v = median(samples)
    note = f"{how}; median of {len(samples)}"
    if n != 1_000_000:
        note += f"; ratio per point (= {fmt_num(v * 1e6 / n)} ms per 1M)"
    return Result(
        tool,
        figure,
        value=v,
        unit=f"ms / {n:,} pts",
        points=n,
        norm=v * 1e6 / n,
        samples=samples,
        note=note,
    )


WORKERS: dict[tuple[str, str], tuple[Worker, dict[str, int]]] = {
    ("tympan", "caller"): (tympan_caller, CALLER_CALLS),
    ("tympan", "ingest"): (tympan_ingest, INGEST_POINTS),
    ("tympan", "ingest-pg"): (tympan_ingest_pg, INGEST_POINTS),
    ("tympan", "read"): (tympan_read, READ_POINTS),
    ("tympan", "read-pg"): (tympan_read_pg, READ_POINTS),
    ("mlflow", "caller"): (mlflow_caller, CALLER_CALLS),
    ("mlflow", "ingest"): (mlflow_ingest, INGEST_POINTS),
    ("mlflow", "read"): (mlflow_read, READ_POINTS),
    ("wandb", "caller"): (wandb_caller, CALLER_CALLS),
    ("wandb", "ingest"): (wandb_ingest, INGEST_POINTS),
    ("aim", "caller"): (aim_caller, CALLER_CALLS),
    ("aim", "ingest"): (aim_ingest, INGEST_POINTS),
    ("aim", "read"): (aim_read, READ_POINTS),
}


def _version(tool: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(tool)
    except PackageNotFoundError:
        return ""


def run_worker(tool: str, figure: str, quick: bool) -> None:
    """Measure one (tool, figure) in this process and print its result line."""
    fn, sizes = WORKERS[(tool, figure)]
    n = sizes[tool] // (10 if quick else 1)
    with tempfile.TemporaryDirectory(prefix=f"tympan-bench-{tool}-") as d:
        os.chdir(d)  # peers drop files into the working directory (mlruns/, wandb/)
        result = fn(n, Path(d), quick)
        os.chdir(HERE)
    result.version = _version(tool)
    emit(result)


# --------------------------------------------------------------------------- parent


def unavailable(tool: str, python: str) -> tuple[str, str] | None:
    """(status, reason) when `tool` cannot be benchmarked with `python`, else None."""
    if not has_module(python, tool, WORKER_ENV):
        return "not installed", f"interpreter {python}"
    if tool == "tympan" and not has_module(
        python, "tympan", WORKER_ENV, attrs=["init", "load_run"]
    ):
        return "unavailable", "tympan.init / tympan.load_run missing"
    return None


def measure(tool: str, figure: str, quick: bool, timeout: float) -> list[Result]:
    python = python_for(tool, ROOT)
    if figure == "import":
        progress(f"{tool} import")
        return [measure_import(tool, python, WORKER_ENV, IMPORT_REPEATS)]
    if figure == "read" and tool == "wandb":
        return [Result("wandb", "read", "n/a", unit="ms", note="offline mode has no read API")]
    extra = ["--quick"] if quick else []
    figs = [figure]
    if tool == "tympan" and figure in ("ingest", "read"):
        figs.append(f"{figure}-pg")  # the same workload on PostgreSQL
    return [spawn_worker(python, SCRIPT, tool, f, extra, WORKER_ENV, timeout) for f in figs]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10x smaller loops (smoke test)")
    p.add_argument("--only", default=",".join(TOOLS), help="comma-separated tools")
    p.add_argument("--figures", default=",".join(FIGURES), help="comma-separated figures")
    p.add_argument("--timeout", type=float, default=600, help="seconds per worker")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--figure", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.figure, args.quick)
        return 0

    tools = [t.strip() for t in args.only.split(",") if t.strip()]
    figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = sorted(set(tools) - set(TOOLS)) + sorted(set(figures) - set(FIGURES))
    if unknown:
        p.error(f"unknown tool or figure: {', '.join(unknown)}")

    from rich.console import Console

    console = Console(width=200)
    load_at_start = os.getloadavg()  # other work on the machine skews the figures
    missing = {t: unavailable(t, python_for(t, ROOT)) for t in tools}
    tables: dict[str, list[dict[str, Any]]] = {}
    for figure in figures:
        results: list[Result] = []
        for tool in tools:
            why = missing[tool]
            if why:
                results.append(Result(tool, figure, why[0], note=why[1]))
            else:
                results.extend(measure(tool, figure, args.quick, args.timeout))
        baseline = next(
            (r for r in results if r.tool == "tympan" and r.figure == figure and r.status == "ok"),
            None,
        )
        title = TITLES[figure] + (" [--quick: smoke test only]" if args.quick else "")
        console.print(
            render_table(
                title,
                results,
                higher_is_better=figure == "ingest",
                targets=TARGETS,
                baseline=baseline,
                labels=TYMPAN_LABELS,
            )
        )
        tables[figure] = [r.to_json() for r in results]

    OUT.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv]),
        "quick": args.quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine_info(), "loadavg_at_start": load_at_start},
        "targets": {k: t.text for k, t in TARGETS.items()},
        "tables": tables,
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written: {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
