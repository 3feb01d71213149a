"""One background thread that runs the probe's per-batch statistics while the training
thread goes on with its forward and backward passes (torch's CPU kernels release the GIL,
so the two run on different cores).

The queue is bounded: when the worker is ``limit`` batches behind, ``submit`` waits, so the
tensors held for it cannot grow without limit. ``drain`` waits until everything submitted
so far is done and raises, in the caller's thread, the first exception the worker met
since the previous drain (the items after it are dropped). ``close`` stops the thread.
The thread holds its work function weakly: once the object it belongs to is collected
(a probe never detached), the thread ends by itself within ``_IDLE`` seconds.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

_STOP = object()
_IDLE = 5.0  # seconds between checks that the work function's owner still exists


class Worker:
    """Runs ``work(item)`` on each submitted item, in order, on one daemon thread."""

    def __init__(self, work: Callable[[Any], None], limit: int = 16,
                 name: str = "tympan-probe") -> None:
        self._work: Callable[[], Callable[[Any], None] | None] = (
            weakref.WeakMethod(work) if hasattr(work, "__self__")  # type: ignore[arg-type]
            else (lambda: work))
        self._name = name
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, limit))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.busy = 0.0  # CPU seconds the thread spent on items (read and reset by the owner)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, item: Any) -> None:
        """Queue ``item``; waits while ``limit`` items are queued (backpressure)."""
        if self._thread is None:
            self._thread = threading.Thread(target=_loop, args=(weakref.ref(self),),
                                            name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(item)

    def drain(self) -> None:
        """Wait until every submitted item is done; raise the worker's first error."""
        if self._thread is not None:
            self._queue.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Finish the queued items and stop the thread (a later ``submit`` restarts it)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()



def _loop(ref: weakref.ref[Worker]) -> None:
    """The thread's body; holds the worker only while it handles an item."""
    worker = ref()
    if worker is None:
        return
    jobs = worker._queue
    del worker
    while True:
        try:
            item = jobs.get(timeout=_IDLE)
        except queue.Empty:
            worker = ref()
            if worker is None or worker._work() is None:
                return
            del worker
            continue
        worker = ref()
        try:
            if item is _STOP or worker is None:
                return
            work = worker._work()
            if work is None:
                return
            if worker._error is None:
                started = time.thread_time()
                try:
                    work(item)
                finally:
                    worker.busy += time.thread_time() - started
        except BaseException as exc:  # handed to the training thread by drain()
            if worker is not None:
                worker._error = exc
        finally:
            work = None
            del worker
            jobs.task_done()
