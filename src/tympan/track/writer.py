"""The process's one writer thread and its queue.

Callers never touch the database on the training path: ``Run.log`` appends to its sink's
column buffers and returns. Every ``flush_interval`` (or sooner when a buffer grows large) the
writer swaps the buffers out, turns them into per-key arrays (``sink.py``), and writes one
transaction per store: metric chunks, summaries and heartbeats together, so a SIGKILL loses
at most one interval and a summary never counts a point the store does not hold. A backlog
(after an outage) goes in pieces of at most the transport's ``max_piece`` points, halved after
each failed try, so a disk short of space takes what fits instead of refusing one transaction
forever; a unit once sent keeps its seq and its points (a server whose answer was lost may
hold it, and skips it only under that seq), so only units never sent are split.
A run whose points the store refuses for good (deleted or ended elsewhere) is written on
its own from then on: its points are dropped, and said so once, never other runs' points.

Other writes (run rows, artifacts, audio, status) are commands (``commands.py``), run in
order after the metrics of the same store are down, so ``finish()`` can never overtake the
points logged before it; their slow work (encoding, blob copies) runs on a second thread.
Ticks are due by the clock, one interval after the previous one began. When the store cannot
be written, points and commands stay in memory (points bounded by TYMPAN_SPOOL_POINTS per run,
files by TYMPAN_SPOOL_MB: see ``keeping.py``), the user is warned once, and everything is
retried: on the next tick for a local store, after a jittered exponential backoff for a
tympan server.

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
from dataclasses import dataclass, replace

from tympan import settings
from tympan.errors import StoreError, StoreUnavailableError
from tympan.store.metrics import Chunk
from tympan.store.summaries import Summary
from tympan.track.commands import Command, Preparer, Spool
from tympan.track.sink import Sink, combine
from tympan.track.transport import MetricBatch, RunMetrics, Transport

log = logging.getLogger("tympan")

WAKE_ROWS = 20_000  # a buffer of this many log() calls wakes the writer early
MIN_PIECE = 1 << 10  # the smallest piece a disk short of space is tried with


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
        self._piece_limit: dict[int, int] = {}  # id(transport) -> points per transaction
        self._health = threading.Lock()  # guards _failing: callers report failures too
        self._latest: dict[tuple[str, str], Command] = {}  # what a `replaces` key last named
        self.spool = Spool()
        self._preparer = Preparer(self.wake, self.unwritable, self.flush_interval)
        self._thread = threading.Thread(target=self._loop, name="tympan-writer", daemon=True)
        self._thread.start()

    # -- called from user threads -------------------------------------------------------
    def attach(self, sink: Sink) -> None:
        with self._lock:
            self._sinks[sink.run_id] = sink

    def submit(self, command: Command) -> Future:
        if command.replaces is not None:
            with self._lock:
                earlier = self._latest.get(command.replaces)
                if earlier is not None:
                    # The same artifact logged again: keep the newest. Also when the earlier
                    # copy is being tried right now (a slow or loaded machine): its attempt
                    # ends, it is not retried, and its bytes no longer count against the spool
                    # (otherwise each save on a full disk could be refused by its own past).
                    earlier.moot = True
                    self._release(earlier)
                self._latest[command.replaces] = command
        self._commands.append(command)
        if not command.prepared:
            self._preparer.add(command)
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
        due = time.monotonic() + self.flush_interval
        while True:
            # Flush by the clock: a tick is due one interval after the previous one began,
            # however long that one took, and sooner when woken (a command, a full buffer).
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            due = time.monotonic() + self.flush_interval
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
        lost = sink.queue(sink.take())
        if lost:
            log.warning(
                "tympan: run %s: spool full (TYMPAN_SPOOL_POINTS=%d); dropped the oldest %d "
                "points (%d in all) while the store is unwritable",
                sink.run_id, sink.spool_points, lost, sink.dropped_points,
            )

    def _write_metrics(self, transport: Transport, sinks: list[Sink], now: float) -> None:
        """Store what the sinks hold, in pieces of at most this transport's piece size.

        A run the store refuses (ended or deleted elsewhere, another project's) is written
        on its own from then on, so its rejection never takes other runs' points with it.
        """
        groups = [[s for s in sinks if s.rejected is None]]
        groups += [[s] for s in sinks if s.rejected is not None and s.pending]
        for group in groups:
            if group and not self._write_group(transport, group, now):
                return  # the store is unwritable: try again later
        self._last_beat[id(transport)] = now

    def _write_group(self, transport: Transport, sinks: list[Sink], now: float) -> bool:
        """False when the store could not be written (the rest waits for the next try)."""
        key = id(transport)
        live = [s.run_id for s in sinks if s.live and s.rejected is None]
        if not live and not any(s.pending for s in sinks):
            return True
        while True:
            limit = self._piece_limit.get(key, transport.max_piece)
            parts = _piece(sinks, limit)
            try:
                transport.write_metrics(MetricBatch([p.metrics for p in parts], live, now))
            except (StoreUnavailableError, OSError) as exc:
                points = sum(p.metrics.points for p in parts)
                self._piece_limit[key] = max(MIN_PIECE, min(limit, points) // 2)
                self._store_failed(transport, exc)
                return False
            except Exception as exc:  # not transient: find whose points the store refuses
                if len(sinks) > 1:
                    return all(self._write_group(transport, [s], now) for s in sinks)
                self._reject(transport, sinks[0], exc)
                return True
            for part in parts:
                part.sink.stored(part.units, part.seqs, part.metrics.summaries)
                part.sink.rejected = None
            self._piece_limit[key] = min(transport.max_piece, limit * 2)
            self._store_recovered(transport)
            if not any(s.pending for s in sinks):
                return True

    def _reject(self, transport: Transport, sink: Sink, exc: Exception) -> None:
        lost = sink.forget(len(sink.pending))
        sink.dropped_points += lost
        if sink.rejected is None:
            sink.rejected = str(exc)
            log.error("tympan: the store at %s refused the metrics of run %s, dropping %d "
                      "points (other runs are not affected): %s", transport.where, sink.run_id,
                      lost, exc)

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
            with self._lock:
                if cmd.moot:
                    cmd.future.set_result(None)
                    continue
                if not cmd.prepared:  # its slow work is not done: it and what follows wait
                    blocked.add(key)
                    remaining.append(cmd)
                    continue
                cmd.running = True
            try:
                self._run(cmd)
            except (StoreUnavailableError, OSError) as exc:
                cmd.running = False
                self._store_failed(cmd.transport, exc)
                blocked.add(key)
                remaining.append(cmd)
                continue
            except BaseException as exc:
                if not cmd.awaited:  # nobody will look at the future: say it here
                    log.error("tympan: could not record %s in %s: %s", cmd.label,
                              cmd.transport.where, exc)
                cmd.future.set_exception(exc)
            with self._lock:
                self._release(cmd)
                if cmd.replaces is not None and self._latest.get(cmd.replaces) is cmd:
                    del self._latest[cmd.replaces]
        self._waiting = remaining

    def _release(self, cmd: Command) -> None:
        self.spool.release(cmd.held)
        cmd.held = 0

    def _run(self, cmd: Command) -> None:
        if cmd.failed is not None:
            raise cmd.failed
        result = None
        if cmd.write is not None:
            result = cmd.write(cmd.transport)
            self._store_recovered(cmd.transport)
        cmd.future.set_result(result)

    def detach(self, run_id: str) -> None:
        with self._lock:
            self._sinks.pop(run_id, None)

    def unwritable(self, transport: Transport, exc: BaseException) -> None:
        """A caller found the store unwritable (copying a file into it): warn, once."""
        with self._health:
            if id(transport) in self._failing:
                return
            self._failing[id(transport)] = 0
        _warn_unwritable(transport, exc)

    def _store_failed(self, transport: Transport, exc: BaseException) -> None:
        key = id(transport)
        with self._health:
            first = key not in self._failing
            failures = self._failing[key] = self._failing.get(key, 0) + 1
        self._retry_at[key] = time.time() + transport.retry_delay(failures)
        if first:
            _warn_unwritable(transport, exc)

    def _store_recovered(self, transport: Transport) -> None:
        key = id(transport)
        self._retry_at.pop(key, None)
        with self._health:
            failed = self._failing.pop(key, None) is not None
        if failed:
            log.warning("tympan: the store at %s is writable again; spooled data written",
                        transport.where)


def _warn_unwritable(transport: Transport, exc: BaseException) -> None:
    log.warning(
        "tympan: cannot write to the store at %s (%s); training goes on, points and files are "
        "kept in memory and written when the store is writable again", transport.where, exc,
    )


@dataclass(frozen=True)
class _Part:
    """One run's share of a piece: its oldest ``units`` pending units, as chunks."""

    sink: Sink
    units: int
    seqs: dict[str, int]
    metrics: RunMetrics


def _piece(sinks: list[Sink], limit: int) -> list[_Part]:
    """The oldest pending units of ``sinks``, up to ``limit`` points (a unit larger than a
    piece is split, unless it was sent before: see Unit), with the summaries they bring the
    stored ones to. Each unit taken is marked with the seq it goes under."""
    parts: list[_Part] = []
    budget = limit
    for sink in sinks:
        pending, taken = sink.pending, 0
        seqs: dict[str, int] = {}
        summary: dict[str, Summary] = {}
        chunks: list[Chunk] = []
        while taken < len(pending) and budget > 0:
            unit = pending[taken]
            if len(unit) > budget:
                if parts or chunks:
                    break
                if unit.seq is None:  # a unit sent before goes whole, over the limit
                    head, pending[taken] = unit.split(budget)
                    pending.insert(taken, head)
                    unit = head
            seq = unit.seq
            if seq is None:
                seq = seqs.get(unit.key, sink.next_seq.get(unit.key, 0))
                pending[taken] = unit = replace(unit, seq=seq)
            seqs[unit.key] = seq + 1
            summary[unit.key] = combine(summary.get(unit.key, sink.summary.get(unit.key)),
                                        unit.summary)
            chunks.append(Chunk(sink.run_id, unit.key, seq, unit.steps, unit.values,
                                unit.times))
            taken += 1
            budget -= len(unit)
        if taken:
            parts.append(_Part(sink, taken, seqs, RunMetrics(sink.run_id, chunks, summary)))
        if budget <= 0:
            break
    return parts


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


__all__ = ["StoreError", "Writer", "get_writer", "on_exit"]
