"""What checking a SQLite store's file costs when a process first opens it to write.

    .venv/bin/python benchmarks/store_check.py            # a 1 GiB store (built once, ~1 min)
    .venv/bin/python benchmarks/store_check.py --gib 4    # a bigger one

``tympan.init()`` runs SQLite's ``PRAGMA quick_check`` once per process and store before its
first write, so that a damaged file is refused instead of written to. This script builds a
store of metric chunks of about the given size (kept under $TMPDIR and reused), then times,
median of 5 each, with the file in the page cache (warm) and evicted from it (cold,
``posix_fadvise(DONTNEED)`` on this file only):

  read     reading the database file sequentially: the floor for any check of every page
  quick    PRAGMA quick_check (what init() runs)
  full     PRAGMA integrity_check (what `tympan db check` runs)
  init     tympan.init() + finish() of an empty run, check included (warm only)

and prints each with its ratio to ``read``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from _common import machine_info  # noqa: E402

POINTS_PER_RUN = 4_000_000
KEYS = 4
BYTES_PER_POINT = 24  # int64 step, float64 value, float64 time


def build(store: Path, gib: float) -> Path:
    from rich.progress import Progress

    import tympan
    from tympan.track.stores import close_stores

    db = store / "tympan.db"
    target = gib * 2**30
    if db.exists() and db.stat().st_size >= 0.95 * target:
        return db
    runs = max(1, round(target / (POINTS_PER_RUN * BYTES_PER_POINT)))
    with Progress() as bar:
        task = bar.add_task(f"building a {gib:g} GiB store ({runs} runs)", total=runs)
        for i in range(runs):
            run = tympan.init(project="size", name=f"r{i}", store=str(store))
            for step in range(POINTS_PER_RUN // KEYS):
                v = step * 1e-6
                run.log({"a": v, "b": v, "c": v, "d": v}, step=step)
            run.finish()
            bar.advance(task)
    close_stores()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def evict(db: Path) -> None:
    fd = os.open(db, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_file(db: Path) -> None:
    with open(db, "rb", buffering=0) as f:
        while f.read(1 << 22):
            pass


def pragma(db: Path, name: str) -> None:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"PRAGMA {name}").fetchall()
    if rows != [("ok",)]:
        raise RuntimeError(f"{name} found damage: {rows[:3]}")


def init_once(store: Path) -> None:
    import tympan
    from tympan.track.stores import close_stores

    tympan.init(project="open", store=str(store)).finish()
    close_stores()  # the next init opens (and checks) the store afresh


def timed(fn, db: Path, cold: bool, repeats: int = 5) -> float:
    samples = []
    for _ in range(repeats):
        if cold:
            evict(db)
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="store size in GiB (default 1)")
    args = parser.parse_args()
    os.environ["TYMPAN_CAPTURE_ENV"] = "0"
    store = Path(tempfile.gettempdir()) / f"tympan-bench-store-check-{args.gib:g}GiB"
    db = build(store, args.gib)
    size = db.stat().st_size
    print(machine_info())
    print(f"store: {db} ({size / 2**30:.2f} GiB)")
    rows = []
    for cold in (False, True):
        read = timed(lambda: read_file(db), db, cold)
        rows.append(("read the file", cold, read, read))
        for label, name in (("quick_check (init)", "quick_check"),
                            ("integrity_check (db check)", "integrity_check")):
            rows.append((label, cold, timed(lambda n=name: pragma(db, n), db, cold), read))
    warm_read = rows[0][2]
    rows.append(("tympan.init() + finish()", False, timed(lambda: init_once(store), db, False),
                 warm_read))
    print(f"\n{'what':30} {'cache':6} {'ms':>9} {'ms/GiB':>9} {'x read':>7}")
    for label, cold, ms, read in rows:
        print(f"{label:30} {'cold' if cold else 'warm':6} {ms:9.0f} "
              f"{ms / (size / 2**30):9.0f} {ms / read:7.2f}")


if __name__ == "__main__":
    main()
