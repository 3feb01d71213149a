"""What a write costs the store: a run inserted, a summary written for the first time, a summary
updated (what every flush of a logging run does), per row through the store layer, on a
fresh SQLite store. With ``--against SRC`` (the ``src`` folder of another checkout, e.g. from
``git archive``), that code is measured in alternation with this one, in child processes,
and the ratio printed: a schema or index change must not make logging dearer.

    .venv/bin/python benchmarks/store_writes.py [--rounds 2] [--against /tmp/before/src]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS, KEYS, REPEATS = 2000, 10, 5


def measure() -> dict[str, float]:
    """Microseconds per row, median of REPEATS rounds of RUNS runs with KEYS summaries each."""
    from tympan.store import open_store, projects, runs, summaries
    from tympan.store.summaries import Summary
    from tympan.track.naming import new_run_id

    took: dict[str, list[float]] = {"run insert": [], "new summary": [], "summary update": []}
    with tempfile.TemporaryDirectory() as where, open_store(where, create=True) as store:
        for _ in range(REPEATS):
            now = time.time()
            rows = [dict(id=new_run_id(), name=f"r{i}", status="running", created_at=now + i,
                         started_at=now + i, ended_at=None, heartbeat_at=None,
                         config={"model": {"encoder": "gru", "layers": i % 6}, "seed": i % 5},
                         tags=[], note="", parent_id=None, study_id=None, host="h", pid=1,
                         seed=i % 5, env_id=None, error=None) for i in range(RUNS)]
            with store.write() as conn:
                project = projects.ensure(conn, "p", now)
                t = time.perf_counter()
                runs.insert_many(conn, [r | {"project_id": project} for r in rows])
                took["run insert"].append((time.perf_counter() - t) / RUNS)
            for name, value in (("new summary", 0.1), ("summary update", 0.2)):
                changed = {r["id"]: {f"k{j}": Summary(value, 1, 0.1, 1, value, 1, 1)
                                     for j in range(KEYS)} for r in rows}
                with store.write() as conn:
                    t = time.perf_counter()
                    summaries.upsert_many(conn, changed, now)
                    took[name].append((time.perf_counter() - t) / (RUNS * KEYS))
    return {k: 1e6 * statistics.median(v) for k, v in took.items()}


def in_child(src: str | None) -> dict[str, float]:
    env = dict(os.environ, TYMPAN_CAPTURE_ENV="0")
    if src is not None:
        env["PYTHONPATH"] = src
    out = subprocess.run([sys.executable, __file__, "--child"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--against", metavar="SRC", help="another checkout's src folder")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return 0
    sides = {"this": None} | ({"against": args.against} if args.against else {})
    got: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, src in sides.items():
            got[side].append(in_child(src))
    print(f"us per row, median of {REPEATS} x {RUNS} runs with {KEYS} summaries, "
          f"{args.rounds} rounds")
    for figure in got["this"][0]:
        line = f"{figure:>15}: " + ", ".join(
            f"{side} " + " / ".join(f"{r[figure]:.1f}" for r in rounds)
            for side, rounds in got.items())
        if args.against:
            ratio = (statistics.median(r[figure] for r in got["this"])
                     / statistics.median(r[figure] for r in got["against"]))
            line += f"  (this / against: {ratio:.2f}x)"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
