"""What one run shares with the writer thread: the caller's buffers and what waits to be stored.

``Run.log`` appends to the caller's column lists; the writer swaps them out (``take``) and
turns them into :class:`Unit` s, one per key, each with the summary of its own points. A unit
is the smallest thing the writer stores, so a backlog can be written in pieces, and a unit
dropped (a full spool, a run the store refuses) takes its points out of the run's summary
with it: ``summary`` only ever folds in units the store has acknowledged.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from tympan import settings
from tympan.store.summaries import Summary
from tympan.track.transport import Transport


@dataclass(frozen=True)
class Unit:
    """One key's points from one swap of the caller's buffers, and their summary. Once sent,
    a unit keeps the ``seq`` it went under, and its points: a server whose answer was lost
    may hold it, and skips it by that seq when it comes again (split, its halves would not
    be skipped but stored a second time)."""

    key: str
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray
    summary: Summary
    seq: int | None = None

    def __len__(self) -> int:
        return len(self.steps)

    @classmethod
    def of(cls, key: str, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> Unit:
        return cls(key, steps, values, times, summarize(steps, values))

    def split(self, n: int) -> tuple[Unit, Unit]:
        """The first ``n`` points and the rest, each with its own summary (never once sent)."""
        if self.seq is not None:
            raise ValueError(f"unit {self.key} was sent as seq {self.seq}: it is never split")
        return (Unit.of(self.key, self.steps[:n], self.values[:n], self.times[:n]),
                Unit.of(self.key, self.steps[n:], self.values[n:], self.times[n:]))


class Sink:
    """One run's buffers. The caller appends columns under ``lock`` (uncontended: the writer
    holds it only to swap in empty lists): one step and time per ``log()`` call, and per key
    the call's row index and value. Floats and ints are not tracked by the garbage collector,
    so a long buffer costs no GC time, and the writer turns the lists into arrays without a
    Python loop. Everything below ``columns`` belongs to the writer thread."""

    def __init__(self, run_id: str, transport: Transport) -> None:
        self.run_id = run_id
        self.transport = transport
        self.lock = threading.Lock()
        self.steps: list[int] = []
        self.times: list[float] = []
        self.columns: dict[str, tuple[list[int], list[float | int]]] = {}
        self.summary: dict[str, Summary] = {}  # of what the store holds
        self.next_seq: dict[str, int] = {}
        self.pending: deque[Unit] = deque()
        self.pending_points = 0
        self.dropped_points = 0
        self.spool_points: int = settings.get("TYMPAN_SPOOL_POINTS")
        self.rejected: str | None = None  # why the store refused this run's points, once it did
        self.live = True

    def take(self) -> list[Unit]:
        """Swap the caller's buffers for empty ones; return what they held, one unit per key."""
        with self.lock:
            steps, times, columns = self.steps, self.times, self.columns
            if not steps:
                return []
            self.steps, self.times, self.columns = [], [], {}
        step_array = np.array(steps, dtype=np.int64)
        time_array = np.array(times, dtype=np.float64)
        units = []
        for key, (rows, values) in columns.items():
            if len(rows) == len(steps):  # logged on every call: rows are 0..n-1
                units.append(Unit.of(key, step_array, _floats(values), time_array))
            else:
                index = np.array(rows, dtype=np.intp)
                units.append(Unit.of(key, step_array[index], _floats(values),
                                     time_array[index]))
        return units

    def queue(self, units: list[Unit]) -> int:
        """Add units to what waits for the store; returns how many points the spool limit
        made it drop (the oldest first, never the newest unit)."""
        for unit in units:
            self.pending.append(unit)
            self.pending_points += len(unit)
        lost = 0
        while self.pending_points > self.spool_points and len(self.pending) > 1:
            lost += self.forget(1)
        self.dropped_points += lost
        return lost

    def forget(self, units: int) -> int:
        """Drop the oldest ``units`` pending units unstored; returns their points. A dropped
        unit that was sent keeps its seq used: the server may hold it, and would skip the
        next unit sent under the same seq."""
        lost = 0
        for _ in range(units):
            unit = self.pending.popleft()
            if unit.seq is not None:
                self.next_seq[unit.key] = max(self.next_seq.get(unit.key, 0), unit.seq + 1)
            self.pending_points -= len(unit)
            lost += len(unit)
        return lost

    def stored(self, units: int, seqs: dict[str, int], summary: dict[str, Summary]) -> None:
        """The oldest ``units`` pending units are in the store, as chunks up to ``seqs``."""
        for _ in range(units):
            self.pending_points -= len(self.pending.popleft())
        self.next_seq.update(seqs)
        self.summary.update(summary)

    def has_data(self) -> bool:
        return bool(self.steps or self.pending)


def summarize(steps: np.ndarray, values: np.ndarray) -> Summary:
    """last/min/max/counts of a batch; min/max skip NaN, counts include everything."""
    n = len(values)
    nan = np.isnan(values)
    n_nan = int(nan.sum())
    s = Summary(last=float(values[-1]), last_step=int(steps[-1]), count=n, nan_count=n_nan,
                inf_count=int(np.isinf(values).sum()))
    if n_nan == n:
        return s
    lo = int(np.nanargmin(values)) if n_nan else int(values.argmin())
    hi = int(np.nanargmax(values)) if n_nan else int(values.argmax())
    s.min, s.min_step = float(values[lo]), int(steps[lo])
    s.max, s.max_step = float(values[hi]), int(steps[hi])
    return s


def combine(before: Summary | None, after: Summary) -> Summary:
    """The summary of two batches, ``after`` logged later than ``before``."""
    if before is None:
        return after
    out = replace(before, last=after.last, last_step=after.last_step,
                  count=before.count + after.count,
                  nan_count=before.nan_count + after.nan_count,
                  inf_count=before.inf_count + after.inf_count)
    if after.min is not None and (out.min is None or after.min < out.min):
        out.min, out.min_step = after.min, after.min_step
    if after.max is not None and (out.max is None or after.max > out.max):
        out.max, out.max_step = after.max, after.max_step
    return out


def _floats(values: list) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:  # ints beyond float range: store them as +-inf, as float() would
        return np.array([_float_or_inf(v) for v in values], dtype=np.float64)


def _float_or_inf(value: float | int) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")
