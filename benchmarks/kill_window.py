"""What a SIGKILL loses under heavy load: metrics, audio and checkpoints, and orphaned blobs.

    .venv/bin/python benchmarks/kill_window.py               # 20 kills, about 2 minutes
    .venv/bin/python benchmarks/kill_window.py --kills 5     # a quick look
    .venv/bin/python benchmarks/kill_window.py --src OLD/src # the killed process on another
                                                             # tympan (e.g. an older commit)

Each kill starts a training-like process on a fresh SQLite store that logs as fast as it
can: 10 metrics per call (one of them the wall-clock time of the call), a 1 s clip of
16 kHz audio every 0.25 s and a 4 MB checkpoint every 0.5 s (``log_artifact`` of a file it
then overwrites, under a new name each time). After a random 1.5-3.5 s of that, the process
is killed with SIGKILL and the store is read back:

  metrics      kill time minus the wall time of the newest stored point
  audio        kill time minus the log time of the newest stored clip
  checkpoint   kill time minus the log time of the newest stored checkpoint
  orphans      blob files left with no record (what `tympan db gc` collects), and
               half-written temporary files

The loss windows are printed as a distribution (min, median, 90th percentile, max) with how
many kills lost more than TYMPAN_FLUSH_INTERVAL, against the documented bound, together with
the logging rate the process reached. Finally `tympan db gc` is run on each store to show
that it collects every orphan.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from _common import machine_info  # noqa: E402

KEYS = 10
CLIP_EVERY = 0.25  # seconds between audio clips
CHECKPOINT_EVERY = 0.5  # seconds between checkpoints
CHECKPOINT_BYTES = 4 << 20


def worker(store: str) -> None:
    """The process that gets killed: log flat out until SIGKILL (at most 60 s)."""
    import numpy as np

    import tympan

    run = tympan.init(project="kill", store=store)
    tone = (0.3 * np.sin(np.arange(16_000) / 8.0)).astype(np.float32)
    checkpoint = Path(store) / "last.pt"
    keys = [f"m{j}" for j in range(1, KEYS)]
    start = time.time()
    next_clip = next_checkpoint = start
    step = 0
    print(run.id, flush=True)
    while True:
        now = time.time()
        values = {k: step * 1e-3 for k in keys}
        values["wall"] = now
        run.log(values, step=step)
        step += 1
        if step % 256:
            continue
        if now >= next_clip:
            run.log_audio("val/tone", tone, 16_000, step=step, caption=repr(now))
            next_clip += CLIP_EVERY
        if now >= next_checkpoint:
            checkpoint.write_bytes(np.float64(now).tobytes() + os.urandom(CHECKPOINT_BYTES - 8))
            run.log_artifact(checkpoint, name=f"ckpt/{step:09d}.pt")
            next_checkpoint += CHECKPOINT_EVERY
        if now - start > 60:
            return


def one_kill(store: Path, rng: random.Random, src: str | None) -> dict:
    env = {**os.environ, "TYMPAN_CAPTURE_ENV": "0"}
    if src:
        env["PYTHONPATH"] = src
    child = subprocess.Popen([sys.executable, __file__, "--worker", str(store)],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        run_id = child.stdout.readline().strip()
        started = time.time()
        time.sleep(rng.uniform(1.5, 3.5))
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    return {"run": run_id, "killed_at": killed_at, "ran": killed_at - started,
            **read_back(store / "tympan.db", run_id, killed_at)}


def read_back(db: Path, run_id: str, killed_at: float) -> dict:
    import numpy as np

    with sqlite3.connect(db) as conn:
        walls = [np.frombuffer(v, dtype="<f8").max() for (v,) in conn.execute(
            "SELECT vals FROM metric_chunks WHERE run_id = ? AND key = 'wall'", (run_id,))]
        points = conn.execute("SELECT coalesce(sum(n), 0) FROM metric_chunks WHERE run_id = ?",
                              (run_id,)).fetchone()[0]
        clips = [float(c) for (c,) in conn.execute(
            "SELECT caption FROM audio_samples WHERE run_id = ?", (run_id,))]
        checkpoints = [sha for (sha,) in conn.execute(
            "SELECT sha256 FROM artifacts WHERE run_id = ? AND path LIKE 'ckpt/%'", (run_id,))]
    blobs = db.parent / "blobs"
    logged = [float(np.frombuffer((blobs / s[:2] / s[2:]).read_bytes()[:8], dtype="<f8")[0])
              for s in checkpoints]
    return {
        "points": points,
        "metrics": killed_at - max(walls) if walls else float("nan"),
        "audio": killed_at - max(clips) if clips else float("nan"),
        "checkpoint": killed_at - max(logged) if logged else float("nan"),
        "checkpoints": len(logged),
        "clips": len(clips),
    }


def garbage(store: Path) -> tuple[int, int]:
    """(orphaned blob files, unfinished temporary files) as `tympan db gc --dry-run` sees
    them, then collected for real."""
    from tympan.store import open_store, upgrade_store
    from tympan.store.garbage import collect

    upgrade_store(store)  # written by --src, an older tympan: nothing to do otherwise
    with open_store(store) as opened:
        found = collect(opened, older_than=0.0, dry_run=True)
        collect(opened, older_than=0.0, dry_run=False)
        left = collect(opened, older_than=0.0, dry_run=True)
    if left.files:
        raise RuntimeError(f"gc left {left.files} files in {store}")
    return found.orphans, found.unfinished


def describe(xs: list[float]) -> str:
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return "n/a"
    p90 = xs[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))]
    return (f"min {xs[0]:.2f}  median {statistics.median(xs):.2f}  p90 {p90:.2f}  "
            f"max {xs[-1]:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--src", help="tympan source folder for the killed process "
                                      "(default: the installed tympan)")
    parser.add_argument("--worker", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    from rich.progress import Progress

    from tympan import settings

    interval = settings.get("TYMPAN_FLUSH_INTERVAL")
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tympan-kill-") as tmp, Progress() as bar:
        task = bar.add_task("SIGKILL under load", total=args.kills)
        for i in range(args.kills):
            store = Path(tmp) / f"s{i}"
            row = one_kill(store, rng, args.src)
            row["orphans"], row["unfinished"] = garbage(store)
            rows.append(row)
            bar.advance(task)
    print(machine_info())
    print(f"{args.kills} SIGKILLs under load; TYMPAN_FLUSH_INTERVAL={interval:g} s; "
          f"killed process on {args.src or 'the installed tympan'}")
    rate = statistics.median(r["points"] / r["ran"] for r in rows)
    print(f"logging rate: median {rate:,.0f} points/s ({KEYS} per call), plus a 1 s clip "
          f"every {CLIP_EVERY:g} s and a {CHECKPOINT_BYTES >> 20} MB checkpoint every "
          f"{CHECKPOINT_EVERY:g} s")
    for what in ("metrics", "audio", "checkpoint"):
        values = [r[what] for r in rows]
        over = sum(v > interval for v in values)
        print(f"{what:11} lost: {describe(values)}; {over} of {len(rows)} over {interval:g} s")
    print(f"orphaned blob files: {sum(r['orphans'] for r in rows)} in all (most in one store: "
          f"{max(r['orphans'] for r in rows)}); unfinished temporary files: "
          f"{sum(r['unfinished'] for r in rows)}; all collected by tympan db gc")


if __name__ == "__main__":
    main()
