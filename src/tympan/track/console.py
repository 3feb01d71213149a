"""Console capture: what a run's script prints, kept with the run as ``console.log``.

While a run is open, ``sys.stdout`` and ``sys.stderr`` are replaced by tees that write to the
original stream first (the user sees everything as before) and then into a bounded buffer;
``logging`` handlers already writing to those streams are pointed at the tees too, so log
records of libraries set up before ``init()`` are kept. At ``finish()`` the streams are put
back and the text is stored as the artifact ``console.log`` (text/plain).

Bounded: at most ``TYMPAN_CONSOLE_LIMIT`` characters are kept, the first half and the last
half, with a line saying how much was dropped between them. Output written straight to the
file descriptors (C extensions, child processes) is not seen. One run at a time captures:
a run opened while another captures does not.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tympan.track.run import Run

ARTIFACT = "console.log"
_capturing: ConsoleCapture | None = None
_lock = threading.Lock()


class _Tee:
    """A text stream that writes to ``stream`` and copies into a capture while it is on."""

    def __init__(self, stream: TextIO, capture: ConsoleCapture) -> None:
        self._stream = stream
        self._capture: ConsoleCapture | None = capture

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        capture = self._capture
        if capture is not None and isinstance(text, str):
            capture.keep(text)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer, ...
        return getattr(self._stream, name)


class ConsoleCapture:
    def __init__(self, run: Run, limit: int) -> None:
        self.run = run
        self.half = max(limit // 2, 1)
        self._lock = threading.Lock()
        self._head: list[str] = []
        self._head_size = 0
        self._tail: deque[str] = deque()
        self._tail_size = 0
        self.dropped = 0
        self._streams = (sys.stdout, sys.stderr)
        self._tees = (_Tee(sys.stdout, self), _Tee(sys.stderr, self))
        self._handlers: list[tuple[logging.StreamHandler, TextIO]] = []
        self._stopped = False
        for handler in _stream_handlers():
            for original, tee in zip(self._streams, self._tees, strict=True):
                if handler.stream is original:
                    self._handlers.append((handler, original))
                    handler.setStream(tee)  # type: ignore[arg-type]
        sys.stdout, sys.stderr = self._tees  # type: ignore[assignment]

    def keep(self, text: str) -> None:
        with self._lock:
            if self._head_size < self.half:
                room = self.half - self._head_size
                self._head.append(text[:room])
                self._head_size += min(len(text), room)
                text = text[room:]
                if not text:
                    return
            self._tail.append(text)
            self._tail_size += len(text)
            while self._tail_size > self.half:
                first = self._tail[0]
                over = self._tail_size - self.half
                if len(first) <= over:
                    self._tail.popleft()
                    self._tail_size -= len(first)
                    self.dropped += len(first)
                else:
                    self._tail[0] = first[over:]
                    self._tail_size -= over
                    self.dropped += over

    def text(self) -> str:
        with self._lock:
            head, tail = "".join(self._head), "".join(self._tail)
            if not self.dropped:
                return head + tail
            return (f"{head}\n[... tympan dropped {self.dropped} characters here: it keeps "
                    f"the first and the last {self.half} (TYMPAN_CONSOLE_LIMIT) ...]\n{tail}")

    def stop(self) -> None:
        """Put the streams back and store what was printed with the run."""
        global _capturing
        if self._stopped:
            return
        self._stopped = True
        for stream in self._streams:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for tee in self._tees:
            tee._capture = None  # a tee someone still holds passes text through from now on
        if sys.stdout is self._tees[0]:
            sys.stdout = self._streams[0]
        if sys.stderr is self._tees[1]:
            sys.stderr = self._streams[1]
        for handler, original in self._handlers:
            if handler.stream in self._tees:
                handler.setStream(original)
        with _lock:
            if _capturing is self:
                _capturing = None
        text = self.text()
        if text:
            self.run.log_artifact(text.encode("utf-8", "replace"), name=ARTIFACT,
                                  media_type="text/plain")


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)]
    return [h for logger in loggers for h in logger.handlers
            if type(h) is logging.StreamHandler]


def start_capture(run: Run, enabled: bool | None) -> ConsoleCapture | None:
    """Capture the console into ``run`` unless it is off (``enabled`` False, or None and
    TYMPAN_CONSOLE off) or another run captures it already."""
    global _capturing
    from tympan import settings

    asked = enabled
    if enabled is None:
        enabled = settings.get("TYMPAN_CONSOLE")
    if not enabled:
        return None
    with _lock:
        if _capturing is not None:
            if asked:  # by default a second open run simply leaves it to the first
                logging.getLogger("tympan").warning(
                    "tympan: run %s does not capture the console: run %s captures it already",
                    run.id, _capturing.run.id)
            return None
        _capturing = ConsoleCapture(run, settings.get("TYMPAN_CONSOLE_LIMIT"))
        return _capturing
