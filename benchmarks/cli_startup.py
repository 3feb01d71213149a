"""CLI start-up benchmark: wall time of `tympan --help`, `tympan runs` and `tympan show RUN`
on a demo-sized store, against the MLflow and W&B command lines, measured in the same run.

    /work/helpers/cpu exclusive .venv/bin/python benchmarks/cli_startup.py
    .venv/bin/python benchmarks/cli_startup.py --repeats 3   # smoke test

Each figure is the median (and the minimum) wall time of ``--repeats`` fresh processes, with
the median CPU time (user + system) beside it, the commands interleaved so that drift hits
all alike, after one untimed warm-up run each (OS cache and bytecode). Every process runs
with default settings: the ``PYTHON*`` variables of the calling shell are dropped, so Python
writes and reuses its bytecode cache as it does for any user (``PYTHONDONTWRITEBYTECODE=1``
would make tympan's editable source compile on every start while the peers' installed
packages keep theirs). The store is made the way ``make demo`` fills one: 15 finished runs
of an ASR study (3 encoders x 5 seeds), 8 metric keys of 200 steps each, written with the
real tracking API; ``--store`` measures an existing store instead (its newest run for
``show``). MLflow's store is a SQLite tracking database with the same runs, params and
metrics, and its figures are ``mlflow --help``, ``mlflow runs list`` and ``mlflow runs
describe``; W&B's CLI reads runs only from its server, so its figure is ``wandb --help``.
Each peer's executable is looked for in ``.venv-bench`` (made by
``benchmarks/setup-bench.sh``), ``.venv-mlflow`` and this interpreter's venv, in that order
(``--mlflow-bin`` / ``--wandb-bin`` name a directory instead); a peer found nowhere is
reported as not installed.

tympan keeps the SQL of its store reads compiled in ``TYMPAN_SQL_CACHE`` (here a folder of
the run's own, filled by the warm-up); the rows "SQL not cached" measure a start that must
compile its SQL with SQLAlchemy first (the first one after an install or an upgrade).

Targets (issue 16, item 6): `tympan --help`, `tympan runs`, `tympan show RUN` <= 250 ms;
`import tympan` <= 150 ms. Results also go to benchmarks/.out/cli_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt_num, machine_info, median, ratio_text

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = {"tympan --help": 250.0, "tympan runs": 250.0, "tympan show RUN": 250.0,
             "import tympan": 150.0}

FILL_TYMPAN = """
import sys, tympan
for i in range(15):
    encoder = ("gru", "conv", "transformer")[i % 3]
    with tympan.init(project="asr-ctc", store=sys.argv[1], tags=["demo"],
                     config={"encoder": encoder, "lr": 3e-4, "seed": i // 3, "epochs": 4},
                     system_metrics=False, console=False) as run:
        for step in range(200):
            run.log({f"train/{k}": 1.0 / (step + 1 + j) for j, k in
                     enumerate(("loss", "ctc", "grad_norm", "lr"))}, step=step)
            if step % 20 == 19:
                run.log({"val/loss": 1.0 / step, "val/wer": 0.5 / step, "val/cer": 0.2 / step,
                         "test/wer": 0.4 / step}, step=step)
print(run.id)
"""

FILL_MLFLOW = """
import sys, mlflow
mlflow.set_tracking_uri(sys.argv[1])
experiment = mlflow.set_experiment("asr-ctc")
for i in range(15):
    with mlflow.start_run() as run:
        mlflow.log_params({"encoder": ("gru", "conv", "transformer")[i % 3], "lr": 3e-4,
                           "seed": i // 3, "epochs": 4})
        mlflow.set_tag("demo", "1")
        for step in range(200):
            mlflow.log_metrics({f"train_{k}": 1.0 / (step + 1 + j) for j, k in
                                enumerate(("loss", "ctc", "grad_norm", "lr"))}, step=step)
            if step % 20 == 19:
                mlflow.log_metrics({"val_loss": 1.0 / step, "val_wer": 0.5 / step,
                                    "val_cer": 0.2 / step, "test_wer": 0.4 / step}, step=step)
print(experiment.experiment_id, run.info.run_id)
"""


def wall_ms(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run of ``argv``; the CPU time (user + system of the child)
    says more than the wall time on a machine that other work keeps busy."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True)
    elapsed = (time.perf_counter() - t0) * 1e3
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace')[-500:]}")
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e3
    return elapsed, cpu


def peer_folders(folder: Path | None) -> list[Path]:
    """Where a peer's executable is looked for: ``folder`` when given, else the venvs."""
    if folder is not None:
        return [folder]
    return [ROOT / ".venv-bench" / "bin", ROOT / ".venv-mlflow" / "bin",
            Path(sys.executable).parent]


def peer(name: str, folder: Path | None) -> Path:
    """The peer's executable: the first found where :func:`peer_folders` look (the first of
    them when it is in none)."""
    candidates = [f / name for f in peer_folders(folder)]
    return next((c for c in candidates if c.exists()), candidates[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--store", help="measure this store instead of a new demo-sized one")
    parser.add_argument("--mlflow-bin", type=Path,
                        help="directory holding the mlflow executable and its python")
    parser.add_argument("--wandb-bin", type=Path, help="directory holding the wandb executable")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    bin_dir = Path(sys.executable).parent
    tympan = str(bin_dir / "tympan")
    work = Path(tempfile.mkdtemp(prefix="tympan-cli-bench-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
           "COLUMNS": "200", "TYMPAN_SYSTEM_METRICS": "0", "TYMPAN_CONSOLE": "0",
           "WANDB_SILENT": "true", "MLFLOW_ENABLE_TELEMETRY": "false",
           "DO_NOT_TRACK": "1", "WANDB_DISABLE_TELEMETRY": "1"}
    store = args.store or str(work / "store")
    if args.store:
        listed = subprocess.run([tympan, "--store", store, "runs", "--json", "--limit", "1"],
                                env=env, capture_output=True, text=True, check=True)
        run_id = json.loads(listed.stdout)[0]["id"]
    else:
        run_id = subprocess.run([sys.executable, "-c", FILL_TYMPAN, store], env=env,
                                capture_output=True, text=True, check=True).stdout.strip()

    # tympan keeps the SQL of its reads compiled in TYMPAN_SQL_CACHE (store/statements.py):
    # here a folder of its own, filled by the warm-up; the "SQL not cached" rows point it
    # below a plain file, where nothing can be kept, so that every start compiles its SQL
    # with SQLAlchemy (as the first start after an install or an upgrade does)
    env["TYMPAN_SQL_CACHE"] = str(work / "sql")
    (work / "a-file").write_text("")
    uncached = {"TYMPAN_SQL_CACHE": str(work / "a-file" / "sql")}
    commands: dict[str, tuple[str, list[str]]] = {
        "python -c pass": ("python", [sys.executable, "-c", "pass"]),
        "import tympan": ("tympan", [sys.executable, "-c", "import tympan"]),
        "tympan --help": ("tympan", [tympan, "--help"]),
        "tympan runs": ("tympan", [tympan, "--store", store, "runs"]),
        "tympan show RUN": ("tympan", [tympan, "--store", store, "show", run_id]),
        "tympan runs, SQL not cached": ("tympan", [tympan, "--store", store, "runs"]),
        "tympan show RUN, SQL not cached": ("tympan", [tympan, "--store", store, "show",
                                                       run_id]),
    }
    own_env = {name: {**env, **uncached} for name in commands if "not cached" in name}
    missing: dict[str, str] = {}
    mlflow, wandb = peer("mlflow", args.mlflow_bin), peer("wandb", args.wandb_bin)
    if mlflow.exists():
        uri = f"sqlite:///{work / 'mlflow.db'}"
        filled = subprocess.run([str(mlflow.parent / "python"), "-c", FILL_MLFLOW, uri],
                                env=env, capture_output=True, text=True, check=True)
        experiment_id, mlflow_run = filled.stdout.split()[-2:]
        peer_env = {"MLFLOW_TRACKING_URI": uri}
        commands["mlflow --help"] = ("mlflow", [str(mlflow), "--help"])
        commands["mlflow runs list"] = ("mlflow", [str(mlflow), "runs", "list",
                                                   "--experiment-id", experiment_id])
        commands["mlflow runs describe"] = ("mlflow", [str(mlflow), "runs", "describe",
                                                       "--run-id", mlflow_run])
        env.update(peer_env)
    else:
        missing["mlflow"] = "not installed (looked in " + \
            ", ".join(os.path.relpath(f, ROOT) for f in peer_folders(args.mlflow_bin)) + ")"
    if wandb.exists():
        commands["wandb --help"] = ("wandb", [str(wandb), "--help"])
    else:
        missing["wandb"] = "not installed (looked in " + \
            ", ".join(os.path.relpath(f, ROOT) for f in peer_folders(args.wandb_bin)) + ")"

    for name, (_, argv) in commands.items():
        wall_ms(argv, own_env.get(name, env))  # warm-up, untimed
    samples: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, (_, argv) in commands.items():
            wall, used = wall_ms(argv, own_env.get(name, env))
            samples[name].append(wall)
            cpu[name].append(used)

    from rich.console import Console
    from rich.table import Table

    peers = {"tympan --help": ("mlflow --help", "wandb --help"),
             "tympan runs": ("mlflow runs list",), "tympan show RUN": ("mlflow runs describe",)}
    table = Table(title=f"CLI start-up, wall ms, p50 (median) and best (min) of {args.repeats}",
                  title_justify="left")
    for column in ("command", "p50", "best", "CPU p50", "target", "vs tympan"):
        table.add_column(column, justify="left" if column in ("command", "target",
                                                              "vs tympan") else "right")
    results = {}
    for name in commands:
        mid, low = median(samples[name]), min(samples[name])
        results[name] = {"median_ms": mid, "min_ms": low, "samples_ms": samples[name],
                         "cpu_median_ms": median(cpu[name]), "cpu_samples_ms": cpu[name]}
        target = TARGET_MS.get(name)
        verdict = "" if target is None else \
            f"<= {target:.0f} ms: " + ("PASS" if mid <= target else "MISS")
        ratio = ""
        for ours, theirs in peers.items():
            if name in theirs:
                ratio = f"{ratio_text(median(samples[ours]), mid, False)} ({ours})"
        table.add_row(name, fmt_num(mid), fmt_num(low), fmt_num(median(cpu[name])), verdict,
                      ratio)
    for tool, why in missing.items():
        table.add_row(tool, "-", "-", "-", "", why)
    Console(width=None if sys.stdout.isatty() else 140).print(table)

    shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / ".out"
    out.mkdir(exist_ok=True)
    (out / "cli_startup.json").write_text(json.dumps(
        {"machine": machine_info(), "repeats": args.repeats, "results": results,
         "missing": missing}, indent=2))


if __name__ == "__main__":
    main()
