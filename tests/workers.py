"""Child processes for the durability tests (run as ``python tests/workers.py MODE ...``)."""

from __future__ import annotations

import sys
import time

import tympan


def log_forever(store: str) -> None:
    """Log one point per millisecond, its value the wall time, until killed (bounded: 60 s)."""
    run = tympan.init(project="kill", store=store)
    print(run.id, flush=True)
    deadline = time.time() + 60
    step = 0
    while time.time() < deadline:
        run.log({"wall": time.time()}, step=step)
        step += 1
        time.sleep(0.001)


def log_many(store: str, points: int, keys: int) -> None:
    run = tympan.init(project="many", config={"worker": sys.argv[-1]}, store=store)
    for step in range(points):
        run.log({f"k{j}": step * 0.5 + j for j in range(keys)}, step=step)
    run.finish()
    print(run.id, flush=True)


if __name__ == "__main__":
    mode, store, *rest = sys.argv[1:]
    if mode == "forever":
        log_forever(store)
    elif mode == "many":
        log_many(store, int(rest[0]), int(rest[1]))
