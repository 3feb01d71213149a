"""The process's one writer thread and its queue.

Callers never touch the database on the training path: ``Run.log`` appends to its sink's
column buffers and returns. Every ``flush_interval`` (or sooner when a buffer grows large) the
writer swaps the buffers out, turns them into per-key arrays, and writes one transaction per
store: metric chunks, summaries and heartbeats together, so a SIGKILL loses at most one
interval and never leaves half a flush behind.

Other writes (run rows, artifacts, audio, status) are commands, run in order after the
metrics of the same store are down, so ``finish()`` can never overtake the points logged
before it. When the store cannot be written, points and commands stay in memory (bounded by
TYMPAN_SPOOL_POINTS per run), the user is warned once, and everything is retried: on the next
tick for a local store, after a jittered exponential backoff for a tympan server.

The writer talks to a run's store only through its :class:`Transport` (``transport.py``), so
it does the same for a local SQLite/PostgreSQL store and for a tympan server over HTTP.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tympan import settings
from tympan.errors import StoreError, StoreUnavailableError
from tympan.store.metrics import Chunk
from tympan.store.summaries import Summary
from tympan.track.transport import MetricBatch, RunMetrics, Transport

log = logging.getLogger("tympan")

WAKE_ROWS = 20_000  # a buffer of this many log() calls wakes the writer early

Columns = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # key -> steps, values, times


class Sink:
    """What one run shares with the writer: the caller's buffers and the writer's bookkeeping.

    The caller appends columns under ``lock`` (uncontended: the writer holds it only to swap
    in empty lists): one step and time per ``log()`` call, and per key the call's row index
    and value. Floats and ints are not tracked by the garbage collector, so a long buffer
    costs no GC time, and the writer turns the lists into arrays without a Python loop.
    """

    def __init__(self, run_id: str, transport: Transport) -> None:
        self.run_id = run_id
        self.transport = transport
        self.lock = threading.Lock()
        self.steps: list[int] = []
        self.times: list[float] = []
        self.columns: dict[str, tuple[list[int], list[float | int]]] = {}
        # Owned by the writer thread from here on.
        self.summary: dict[str, Summary] = {}
        self.next_seq: dict[str, int] = {}
        self.pending: deque[Columns] = deque()
        self.pending_points = 0
        self.dropped_points = 0
        self.spool_points: int = settings.get("TYMPAN_SPOOL_POINTS")
        self.live = True

    def take(self) -> Columns:
        """Swap the caller's buffers for empty ones; return what they held as arrays."""
        with self.lock:
            steps, times, columns = self.steps, self.times, self.columns
            if not steps:
                return {}
            self.steps, self.times, self.columns = [], [], {}
        step_array = np.array(steps, dtype=np.int64)
        time_array = np.array(times, dtype=np.float64)
        out: Columns = {}
        for key, (rows, values) in columns.items():
            if len(rows) == len(steps):  # logged on every call: rows are 0..n-1
                out[key] = (step_array, _floats(values), time_array)
            else:
                index = np.array(rows, dtype=np.intp)
                out[key] = (step_array[index], _floats(values), time_array[index])
        return out

    def has_data(self) -> bool:
        return bool(self.steps or self.pending)


@dataclass
class Command:
    transport: Transport
    write: Callable[[Transport], Any] | None  # fn(transport): one write; None: a barrier
    label: str
    prepare: Callable[[], Any] | None = None  # slow work before the write (encode, copy)
    awaited: bool = False  # a caller waits on the future: a final error goes there, not the log
    future: Future = field(default_factory=Future)
    prepared: bool = False


class Writer:
    def __init__(self) -> None:
        self.flush_interval: float = settings.get("TYMPAN_FLUSH_INTERVAL")
        self.heartbeat_interval: float = settings.get("TYMPAN_HEARTBEAT_INTERVAL")
        self._commands: deque[Command] = deque()
        self._waiting: list[Command] = []  # popped but not yet run (store unwritable)
        self._sinks: dict[str, Sink] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._last_beat: dict[int, float] = {}
        self._failing: dict[int, int] = {}  # id(transport) -> failed attempts in a row
        self._retry_at: dict[int, float] = {}  # id(transport) -> no attempt before this time
        self._thread = threading.Thread(target=self._loop, name="tympan-writer", daemon=True)
        self._thread.start()

    # -- called from user threads -------------------------------------------------------
    def attach(self, sink: Sink) -> None:
        with self._lock:
            self._sinks[sink.run_id] = sink

    def submit(self, command: Command) -> Future:
        self._commands.append(command)
        self._wake.set()
        return command.future

    def wake(self) -> None:
        self._wake.set()

    def barrier(self, transport: Transport) -> Future:
        """A future that completes once everything logged to ``transport`` before it is stored."""
        return self.submit(Command(transport, None, "flush", awaited=True))

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the writer thread --------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._tick()
            except Exception:  # the writer must outlive any one bad tick
                log.exception("tympan writer: unexpected error; continuing")
            if stopping and not self._commands and not self._waiting and not self._has_data():
                return
            if stopping:
                time.sleep(min(self.flush_interval, 0.2))  # store unwritable: retry until joined

    def _has_data(self) -> bool:
        return any(s.has_data() for s in list(self._sinks.values()))

    def _tick(self) -> None:
        while self._commands:  # pop commands first: all points logged before them drain below
            self._waiting.append(self._commands.popleft())
        with self._lock:
            sinks = list(self._sinks.values())
        for sink in sinks:
            self._drain(sink)
        by_transport: dict[int, tuple[Transport, list[Sink]]] = {}
        for sink in sinks:
            by_transport.setdefault(id(sink.transport), (sink.transport, []))[1].append(sink)
        now = time.time()
        for key, (transport, its_sinks) in by_transport.items():
            if now < self._retry_at.get(key, 0.0):
                continue  # backing off after a failure
            busy = any(s.pending for s in its_sinks)
            due = now - self._last_beat.get(key, 0.0) >= self.heartbeat_interval
            if busy or (due and any(s.live for s in its_sinks)):
                self._write_metrics(transport, its_sinks, now)
        self._run_commands()

    def _drain(self, sink: Sink) -> None:
        columns = sink.take()
        if not columns:
            return
        points = 0
        for key, (steps, values, _times) in columns.items():
            _merge(sink.summary.setdefault(key, Summary()), steps, values)
            points += len(steps)
        sink.pending.append(columns)
        sink.pending_points += points
        while sink.pending_points > sink.spool_points and len(sink.pending) > 1:
            lost = sum(len(c[0]) for c in sink.pending.popleft().values())
            sink.pending_points -= lost
            sink.dropped_points += lost
            log.warning(
                "tympan: run %s: spool full (TYMPAN_SPOOL_POINTS=%d); dropped the oldest %d "
                "points (%d in all) while the store is unwritable",
                sink.run_id, sink.spool_points, lost, sink.dropped_points,
            )

    def _write_metrics(self, transport: Transport, sinks: list[Sink], now: float) -> None:
        written: list[tuple[Sink, dict[str, int]]] = []
        batch: list[RunMetrics] = []
        for sink in sinks:
            if not sink.pending:
                continue
            seqs = dict(sink.next_seq)
            chunks, touched = [], set()
            for columns in sink.pending:
                for key, (steps, values, times) in columns.items():
                    seq = seqs.get(key, 0)
                    seqs[key] = seq + 1
                    chunks.append(Chunk(sink.run_id, key, seq, steps, values, times))
                    touched.add(key)
            batch.append(RunMetrics(sink.run_id, chunks, {k: sink.summary[k] for k in touched}))
            written.append((sink, seqs))
        live = [s.run_id for s in sinks if s.live]
        try:
            transport.write_metrics(MetricBatch(batch, live, now))
        except (StoreUnavailableError, OSError) as exc:
            self._store_failed(transport, exc)
            return
        except Exception as exc:  # not transient: keeping the points would fail forever
            lost = sum(s.pending_points for s in sinks)
            log.error("tympan: could not write %d points to %s, dropping them: %s",
                      lost, transport.where, exc)
            for sink in sinks:
                sink.pending.clear()
                sink.pending_points = 0
            return
        for sink, seqs in written:
            sink.next_seq = seqs
            sink.pending.clear()
            sink.pending_points = 0
        self._last_beat[id(transport)] = now
        self._store_recovered(transport)

    def _run_commands(self) -> None:
        now = time.time()
        blocked = {key for key, at in self._retry_at.items() if now < at}
        with self._lock:
            stuck = {id(s.transport) for s in self._sinks.values() if s.pending}
        remaining: list[Command] = []
        for cmd in self._waiting:
            key = id(cmd.transport)
            if key in blocked or key in stuck:
                remaining.append(cmd)  # keep order: nothing overtakes an earlier write
                continue
            try:
                self._run(cmd)
            except (StoreUnavailableError, OSError) as exc:
                self._store_failed(cmd.transport, exc)
                blocked.add(key)
                remaining.append(cmd)
            except BaseException as exc:
                if not cmd.awaited:  # nobody will look at the future: say it here
                    log.error("tympan: could not record %s in %s: %s", cmd.label,
                              cmd.transport.where, exc)
                cmd.future.set_exception(exc)
        self._waiting = remaining

    def _run(self, cmd: Command) -> None:
        if cmd.prepare is not None and not cmd.prepared:
            cmd.prepare()
            cmd.prepared = True
        result = None
        if cmd.write is not None:
            result = cmd.write(cmd.transport)
            self._store_recovered(cmd.transport)
        cmd.future.set_result(result)

    def detach(self, run_id: str) -> None:
        with self._lock:
            self._sinks.pop(run_id, None)

    def _store_failed(self, transport: Transport, exc: BaseException) -> None:
        key = id(transport)
        failures = self._failing.get(key, 0) + 1
        self._failing[key] = failures
        self._retry_at[key] = time.time() + transport.retry_delay(failures)
        if failures == 1:
            log.warning(
                "tympan: cannot write to the store at %s (%s); training goes on, points are "
                "kept in memory and written when the store is writable again",
                transport.where, exc,
            )

    def _store_recovered(self, transport: Transport) -> None:
        key = id(transport)
        self._retry_at.pop(key, None)
        if self._failing.pop(key, None) is not None:
            log.warning("tympan: the store at %s is writable again; spooled data written",
                        transport.where)


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


def _merge(s: Summary, steps: np.ndarray, values: np.ndarray) -> None:
    """Fold a batch into a running summary; min/max skip NaN, counts include everything."""
    n = len(values)
    nan = np.isnan(values)
    n_nan = int(nan.sum())
    s.count += n
    s.nan_count += n_nan
    s.inf_count += int(np.isinf(values).sum())
    s.last, s.last_step = float(values[-1]), int(steps[-1])
    if n_nan == n:
        return
    lo = int(np.nanargmin(values)) if n_nan else int(values.argmin())
    hi = int(np.nanargmax(values)) if n_nan else int(values.argmax())
    if s.min is None or values[lo] < s.min:
        s.min, s.min_step = float(values[lo]), int(steps[lo])
    if s.max is None or values[hi] > s.max:
        s.max, s.max_step = float(values[hi]), int(steps[hi])


_writer: Writer | None = None
_writer_lock = threading.Lock()
_exit_hooks: list[Callable[[], None]] = []


def get_writer() -> Writer:
    """The process's writer, started on first use (never at import)."""
    global _writer
    with _writer_lock:
        if _writer is None or not _writer.alive:
            _writer = Writer()
            if len(_exit_hooks) == 0:
                _exit_hooks.append(_at_exit)
                atexit.register(_at_exit)
                os.register_at_fork(after_in_child=_forget_in_child)
        return _writer


def on_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit before the writer drains (used to finish open runs)."""
    _exit_hooks.append(hook)


def _at_exit() -> None:
    for hook in _exit_hooks[1:]:
        try:
            hook()
        except StoreError as exc:
            log.warning("tympan: %s", exc)
        except Exception:
            log.exception("tympan: error while finishing runs at exit")
    if _writer is not None and _writer.alive:
        _writer.stop(settings.get("TYMPAN_EXIT_TIMEOUT"))
        if _writer.alive:
            log.warning("tympan: store still unwritable at exit; unsaved points are lost")


def _forget_in_child() -> None:
    # The writer thread does not survive fork(); a child that logs starts its own.
    global _writer
    _writer = None


__all__ = ["Command", "Sink", "StoreError", "Writer", "get_writer", "on_exit"]
