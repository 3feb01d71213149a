"""``tympan loop watch``: poll the data folder and the pipeline's triggers, run an iteration
when one asks for it (docs/loop.md, "Triggers").

Debounced: a batch still being copied in (the set of pending manifests, or one of their
sizes, changed since the last poll) waits ``debounce`` seconds more before it counts, also
when a drift alarm or a schedule tick is what asks for the iteration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tympan.loop.history import pending
from tympan.loop.iteration import Iteration, gate_runs, run_iteration
from tympan.loop.spec import Pipeline
from tympan.loop.triggers import Triggers, last_iteration_at


def watch(pipeline: Pipeline, *, store: str | None = None, interval: float = 10.0,
          debounce: float = 5.0, max_iterations: int | None = None,
          say: Callable[[str], None] = lambda _line: None,
          sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.time) -> list[Iteration]:
    """Run iterations as the triggers ask until ``max_iterations`` ran (or Ctrl-C). A drift
    alarm or schedule tick with no new data counts as an ``idle`` iteration."""
    triggers = Triggers(pipeline, store, started=clock(),
                        last_iteration=last_iteration_at(gate_runs(pipeline, store)))
    done: list[Iteration] = []
    seen: tuple[tuple[str, int], ...] | None = None
    settled_at = clock()
    while max_iterations is None or len(done) < max_iterations:
        now_pending = tuple((p, Path(p).stat().st_size) for p in pending(pipeline, store))
        now = clock()
        if now_pending != seen:
            seen, settled_at = now_pending, now
        settled = bool(now_pending) and now - settled_at >= debounce
        reason = "new data" if settled and triggers.on_new_data else triggers.due(now)
        if reason and (settled or not now_pending):
            say(f"{reason}: " + ("running an iteration" if now_pending else
                                 "no new data to train on"))
            if now_pending:
                done.append(run_iteration(pipeline, store=store, say=say, trigger=reason))
            else:
                done.append(Iteration("idle", trigger=reason))
            triggers.spent(clock())
            seen = None
            continue
        sleep(interval if not now_pending else min(interval, debounce))
    return done
