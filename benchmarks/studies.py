"""Study runner overhead and scaling: tympan's local and Ray executors, measured in one run.

1. Dispatch overhead per trial. A study of N trials whose command starts a tympan run and
   logs one point; the wall time per trial, next to the same command launched N times with
   plain ``subprocess.run`` (the floor any process-based runner pays) and, with Ray, next
   to N bare Ray tasks that run the same command (Ray's own cost).
2. Speedup with workers. A study of CPU-bound trials (a fixed amount of pure-Python work)
   run with 1 worker and with W workers; speedup = T(1) / T(W), target >= 0.8 x W.

    .venv/bin/python benchmarks/studies.py [--trials 16] [--work 2.0] [--workers 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/logging.py would shadow the stdlib `logging` that SQLAlchemy and Ray import.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tympan.study.runner import run_study  # noqa: E402
from tympan.study.spec import load_study  # noqa: E402

TRIAL = """\
import sys, time
import tympan

args = dict(a.split("=", 1) for a in sys.argv[1:])
end = time.process_time() + float(args.get("work", 0))
x = 0
while time.process_time() < end:  # CPU-bound: the same work whatever else runs
    x += 1
with tympan.init(project="bench", config=args) as run:
    run.log({"score": float(args["seed"])})
"""


def write_study(folder: Path, name: str, trials: int, work: float, cpus: float = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trial.py").write_text(TRIAL)
    levels = ", ".join(f"l{i}" for i in range(trials // 2))
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\ncommand: python trial.py\noverrides: {{work: {work}}}\n"
                    f"factors: {{f: {{levels: [{levels}], baseline: l0}}}}\n"
                    f"seeds: 2\nmetrics: [{{name: score, direction: higher}}]\n"
                    f"resources: {{cpus: {cpus}}}\n")
    return path


def timed_study(path: Path, store: str, **kw: object) -> tuple[float, int]:
    started = time.perf_counter()
    stored = run_study(load_study(path), store=store, **kw)
    trials = stored.current_trials()
    assert all(t.status == "finished" for t in trials), [t.error for t in trials]
    return time.perf_counter() - started, len(trials)


def bare_subprocesses(folder: Path, store: str, n: int) -> float:
    env = {**os.environ, "TYMPAN_STORE": store}
    started = time.perf_counter()
    for i in range(n):
        subprocess.run([sys.executable, "trial.py", f"seed={i}", "work=0"], cwd=folder, env=env,
                       check=True, capture_output=True)
    return time.perf_counter() - started


def bare_ray_tasks(folder: Path, store: str, n: int) -> float:
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)

    @ray.remote(num_cpus=1)
    def task(i: int) -> int:
        return subprocess.run([sys.executable, "trial.py", f"seed={i}", "work=0"],
                              cwd=folder, env={**os.environ, "TYMPAN_STORE": store},
                              capture_output=True).returncode

    ray.get(task.remote(-1))  # worker start-up is not per-task cost
    started = time.perf_counter()
    for i in range(n):
        assert ray.get(task.remote(i)) == 0
    elapsed = time.perf_counter() - started
    ray.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="trials per study (even)")
    parser.add_argument("--work", type=float, default=2.0, help="CPU seconds per trial")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = parser.parse_args()
    out = Console()
    root = Path(tempfile.mkdtemp(prefix="tympan-bench-studies-"))
    n = args.trials

    overhead = Table(title=f"dispatch: {n} trials that start a run and log one point, "
                           "one at a time", title_justify="left")
    for col in ("runner", "total s", "per trial ms", "vs bare subprocess"):
        overhead.add_column(col, justify="right" if col != "runner" else "left")
    bare = bare_subprocesses(write_study(root / "bare", "bare", n, 0).parent,
                             str(root / "bare-store"), n)
    rows = [("bare subprocess.run", bare)]
    local, _ = timed_study(write_study(root / "local", "local", n, 0), str(root / "s1"))
    rows.append(("tympan local executor", local))
    if not args.no_ray:
        ray_bare = bare_ray_tasks(root / "bare", str(root / "bare-store"), n)
        rows.append(("bare Ray tasks", ray_bare))
        ray_run, _ = timed_study(write_study(root / "ray", "ray", n, 0), str(root / "s2"),
                                 executor="ray", workers=1)
        rows.append(("tympan ray executor (incl. ray.init)", ray_run))
    for name, seconds in rows:
        overhead.add_row(name, f"{seconds:.2f}", f"{seconds / n * 1000:.0f}",
                         f"{seconds / bare:.2f}x")
    out.print(overhead)

    scaling = Table(title=f"speedup: {n} CPU-bound trials of {args.work:g} CPU-s each",
                    title_justify="left")
    for col in ("executor", "workers", "wall s", "speedup", "speedup / workers"):
        scaling.add_column(col, justify="right" if col != "executor" else "left")
    kinds = ["local"] + ([] if args.no_ray else ["ray"])
    for kind in kinds:
        one, _ = timed_study(write_study(root / f"{kind}1", f"{kind}1", n, args.work),
                             str(root / f"{kind}-w1"), executor=kind, workers=1)
        many, _ = timed_study(write_study(root / f"{kind}w", f"{kind}w", n, args.work),
                              str(root / f"{kind}-wn"), executor=kind, workers=args.workers)
        scaling.add_row(kind, "1", f"{one:.1f}", "1.00", "1.00")
        scaling.add_row(kind, str(args.workers), f"{many:.1f}", f"{one / many:.2f}",
                        f"{one / many / args.workers:.2f}")
    out.print(scaling)
    out.print(f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, trials in {root}")


if __name__ == "__main__":
    main()
