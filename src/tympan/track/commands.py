"""Commands: the writes other than metrics (run rows, artifacts, audio, status), and the slow
work some need first (encoding audio, copying a blob into the store).

The writer thread runs every command's write in the order commands were submitted, after the
metrics logged before it. Their slow work runs on a second thread, the :class:`Preparer`, so
a metric flush never waits behind an encoder or a blob's fsync: that kept the loss window of
a SIGKILL long under heavy audio and checkpoint logging (see benchmarks/kill_window.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from tympan import settings
from tympan.errors import StoreUnavailableError
from tympan.track.transport import Transport

log = logging.getLogger("tympan")


@dataclass
class Command:
    transport: Transport
    write: Callable[[Transport], Any] | None  # fn(transport): one write; None: a barrier
    label: str
    prepare: Callable[[], Any] | None = None  # slow work before the write (encode, copy)
    awaited: bool = False  # a caller waits on the future: a final error goes there, not the log
    held: int = 0  # bytes of memory it holds until it is done (counted in the spool)
    replaces: tuple[str, str] | None = None  # (run, path): a later command for it makes it moot
    future: Future = field(default_factory=Future)
    prepared: bool = False  # its slow work is done (or it has none)
    failed: BaseException | None = None  # what its slow work raised, for good
    running: bool = False
    moot: bool = False

    def __post_init__(self) -> None:
        self.prepared = self.prepare is None


class Spool:
    """Bytes of files (artifact copies, encoded audio) waiting in memory for the store,
    bounded by TYMPAN_SPOOL_MB; thread-safe, as callers hold and the writer releases."""

    def __init__(self) -> None:
        self.held = 0
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return settings.get("TYMPAN_SPOOL_MB") << 20

    def hold(self, size: int) -> bool:
        limit = self.limit
        with self._lock:
            if self.held + size > limit:
                return False
            self.held += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.held -= size


class Preparer:
    """Runs commands' slow work on its own thread, oldest first. Work that fails because the
    store's disk cannot take it (full, read-only) is reported and tried again every
    ``retry_every`` seconds; any other failure is kept on the command for the writer."""

    def __init__(self, ready: Callable[[], None],
                 unwritable: Callable[[Transport, BaseException], None],
                 retry_every: float) -> None:
        self._ready = ready
        self._unwritable = unwritable
        self._retry_every = retry_every
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="tympan-preparer", daemon=True)
        self._thread.start()

    def add(self, cmd: Command) -> None:
        self._queue.put(cmd)

    def _loop(self) -> None:
        while True:
            cmd = self._queue.get()
            while not cmd.moot:
                try:
                    cmd.running = True
                    assert cmd.prepare is not None
                    cmd.prepare()
                except (StoreUnavailableError, OSError) as exc:
                    cmd.running = False
                    self._unwritable(cmd.transport, exc)
                    time.sleep(self._retry_every)
                    continue
                except BaseException as exc:
                    cmd.failed = exc
                cmd.running = False
                break
            cmd.prepared = True
            self._ready()
