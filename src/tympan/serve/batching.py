"""Dynamic batching: requests that arrive close together share one forward pass.

Speech requests differ in length by ten times or more, and a padded batch costs as much as
its longest member times its size, so a batch is bounded by its total audio seconds as well
as by its count. One worker thread takes the first waiting request, then keeps adding
requests until the batch holds ``max_size`` requests, or the next one would take it past
``max_seconds`` of audio (that one opens the next batch), or the first has waited
``max_wait_ms``, or no other request is waiting or on its way in. A request longer than
``max_seconds`` on its own is served alone. Padding is the engine's: ``pad_waves`` gives each
row's length, and the models mask what lies past it.

"On its way in" is what the HTTP face says with ``receiving()`` while it reads and decodes a
request's body. Waiting for requests that nobody is sending only adds the wait to every
request at low load (a lone client paid ``max_wait_ms`` on each); under load the batch still
waits for the requests being received, and the queue fills while a batch runs. A batcher
that is not told (``arrivals=False``: a Ray Serve replica, whose requests are received in
another process) waits ``max_wait_ms`` as before.

``submit`` returns a ``concurrent.futures.Future`` (an async route awaits it with
``asyncio.wrap_future``); when the batch fails, each of its futures gets the exception.
``close`` stops taking requests and answers the ones already accepted before it returns.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tympan.errors import TympanError
from tympan.serve.config import Batching
from tympan.serve.threads import ThreadTuner

log = logging.getLogger("tympan.serve")


class ServerClosingError(TympanError):
    """The server is shutting down and takes no new requests (answered 503)."""


@dataclass
class Pending:
    wave: np.ndarray
    seconds: float
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchStats:
    size: int
    seconds: float  # audio in the batch
    waited: list[float]  # each request's time in the queue
    took: float  # the handler's time


_STOP = object()
_POLL = 0.0005  # seconds between looks at the requests on their way in, while a batch waits


class Batcher:
    """Groups submitted waveforms into batches for ``handle(waves) -> results``."""

    def __init__(self, handle: Callable[[list[np.ndarray]], list[Any]], settings: Batching,
                 on_batch: Callable[[BatchStats], None] | None = None,
                 arrivals: bool = False, threads: ThreadTuner | None = None) -> None:
        self.handle = handle
        self.threads = threads  # chooses torch's threads for each batch (None: as they are)
        self.arrivals = arrivals  # whether ``receiving`` says what is on its way in
        self.settings = settings
        self.on_batch = on_batch
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._carry: Pending | None = None
        self._incoming = 0  # requests being received (``receiving``)
        self._thread = threading.Thread(target=self._work, name="tympan-batcher", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    @contextlib.contextmanager
    def receiving(self) -> Iterator[None]:
        """While a request's body is read and decoded: a batch being gathered may wait for
        it (up to ``max_wait_ms``)."""
        with self._lock:
            self._incoming += 1
        try:
            yield
        finally:
            with self._lock:
                self._incoming -= 1

    def submit(self, wave: np.ndarray, seconds: float) -> Future:
        item = Pending(wave, seconds)
        with self._lock:
            if self._closed:
                raise ServerClosingError("the server is shutting down; retry on another "
                                         "replica")
            self._queue.put(item)
        return item.future

    def close(self, timeout: float = 30.0) -> None:
        """Take no more requests; answer the accepted ones; stop the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def _next(self) -> Any:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        return self._queue.get()

    def _collect(self) -> tuple[list[Pending], bool]:
        """The next batch, and whether the stop mark came (after it, nothing is queued)."""
        first = self._next()
        if first is _STOP:
            return [], True
        batch, total = [first], first.seconds
        deadline = first.arrived + self.settings.max_wait_ms / 1000
        while len(batch) < self.settings.max_size:
            wait = deadline - time.perf_counter()
            try:
                if wait <= 0:
                    item = self._queue.get_nowait()
                elif self.arrivals and self._incoming == 0 and self._queue.empty():
                    break  # nobody else is on the way: waiting would only delay this batch
                else:
                    item = self._queue.get(timeout=min(wait, _POLL))
            except queue.Empty:
                if wait <= 0:
                    break
                continue
            if item is _STOP:
                return batch, True
            if total + item.seconds > self.settings.max_seconds:
                self._carry = item
                break
            batch.append(item)
            total += item.seconds
        return batch, False

    def _work(self) -> None:
        stop = False
        while not stop or self._carry is not None:
            if stop:  # the request held back when the stop mark came
                batch, self._carry = [self._carry], None
            else:
                batch, stop = self._collect()
            if batch:
                self._run(batch)

    def _run(self, batch: list[Pending]) -> None:
        count = self.threads.pick(len(batch)) if self.threads is not None else None
        started = time.perf_counter()
        try:
            results = self.handle([p.wave for p in batch])
        except BaseException as exc:  # every waiting request hears of it
            log.exception("a batch of %d requests failed", len(batch))
            for p in batch:
                p.future.set_exception(exc)
            return
        took = time.perf_counter() - started
        for p, result in zip(batch, results, strict=True):
            p.future.set_result(result)
        seconds = sum(p.seconds for p in batch)
        if count is not None:
            self.threads.observe(len(batch), count, took, seconds)
        if self.on_batch is not None:
            try:
                self.on_batch(BatchStats(len(batch), seconds,
                                         [started - p.arrived for p in batch], took))
            except Exception:  # metrics must never stop the worker
                log.exception("recording a batch's statistics failed")
