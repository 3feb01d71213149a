"""``Run``: the object a training script logs to.

Everything here runs in the caller's thread and is kept cheap: ``log`` validates and appends
to a deque; the writer thread (``writer.py``) does all the I/O.
"""

from __future__ import annotations

import mimetypes
import os
import time
import traceback
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import TracebackType
from typing import Any

from tympan.errors import InvalidInputError, RunStateError, StoreUnavailableError
from tympan.store import Store, artifacts, metrics, runs, samples, summaries
from tympan.store.summaries import Summary
from tympan.track import active, audio_sample
from tympan.track.validate import check_key, check_step, to_number
from tympan.track.writer import WAKE_ROWS, Command, Sink, Writer

_now = time.time
_MEDIA_TYPES = {
    ".flac": "audio/flac", ".wav": "audio/wav", ".pt": "application/octet-stream",
    ".ckpt": "application/octet-stream", ".onnx": "application/onnx",
    ".yaml": "application/yaml", ".yml": "application/yaml", ".jsonl": "application/jsonl",
}


class Run:
    """A run being recorded. Create it with ``tympan.init()``."""

    def __init__(self, *, id: str, name: str, project: str, config: dict[str, Any],
                 tags: list[str], store: Store, writer: Writer, sink: Sink,
                 next_step: int = 0) -> None:
        self.id = id
        self.name = name
        self.project = project
        self.config = config
        self.tags = tags
        self.store = store
        self._writer = writer
        self._sink = sink
        self._keys: set[str] = set()
        self._next_step = next_step
        self._closed: str | None = None  # why logging is no longer allowed, once it is not
        self._status: str = "running"

    def __repr__(self) -> str:
        return f"<tympan.Run {self.id} {self.name!r} project={self.project!r} {self._status}>"

    # -- metrics: the hot path ------------------------------------------------------------
    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        """Record metric values at ``step`` (default: one past the highest step so far).

        Only validates and enqueues; a background thread writes. Values must be numbers
        (int, float, numpy scalar, 0-d tensor); NaN and Inf are kept as they are.
        """
        if self._closed is not None:
            raise RunStateError(self._closed)
        if type(data) is not dict:
            data = self._as_dict(data)
        if not self._keys.issuperset(data):
            for key in data:
                check_key(key)
            self._keys.update(data)
        for value in data.values():
            kind = type(value)
            if kind is not float and kind is not int:
                data = {k: to_number(k, v) for k, v in data.items()}
                break
        if step is None:
            step = self._next_step
        elif type(step) is not int or step < 0:
            step = check_step(step)
        if step >= self._next_step:
            self._next_step = step + 1
        sink = self._sink
        with sink.lock:
            steps = sink.steps
            row = len(steps)
            steps.append(step)
            sink.times.append(_now())
            columns = sink.columns
            for key, value in data.items():
                column = columns.get(key)
                if column is None:
                    column = columns[key] = ([], [])
                column[0].append(row)
                column[1].append(value)
        if row == WAKE_ROWS:  # once per buffer: the event stays set until the writer runs
            self._writer.wake()

    @staticmethod
    def _as_dict(data: Any) -> dict[str, Any]:
        if hasattr(data, "items") and hasattr(data, "keys"):
            return dict(data.items())
        raise InvalidInputError(
            f"log() takes a dict of metric name -> number, got {type(data).__name__}"
        )

    @property
    def step(self) -> int:
        """The step the next ``log()`` without an explicit step will use."""
        return self._next_step

    # -- audio and files ------------------------------------------------------------------
    def log_audio(self, key: str, waveform: Any, sample_rate: int, step: int | None = None,
                  caption: str | None = None) -> None:
        """Record an audio clip (numpy or torch; mono or multi-channel), stored as FLAC."""
        self._check_open()
        check_key(key, "audio")
        step = self._next_step if step is None else check_step(step)
        if caption is not None and not isinstance(caption, str):
            raise InvalidInputError(f"audio {key!r}: caption must be a str, got {caption!r}")
        audio = audio_sample.prepare(key, waveform, sample_rate)
        created = _now()
        stored: dict[str, Any] = {}

        def encode() -> None:  # writer thread, outside any transaction
            data = audio.flac()
            stored["sha"], stored["size"] = self.store.blobs.put_bytes(data)

        def record(conn: Any) -> None:
            path = f"audio/{key}/step-{step:08d}-{stored['sha'][:12]}.flac"
            artifact_id = artifacts.record(conn, self.id, path, stored["sha"], stored["size"],
                                           "audio/flac", created)
            samples.record(conn, run_id=self.id, key=key, step=step, artifact_id=artifact_id,
                           sample_rate=audio.sample_rate, frames=audio.frames,
                           duration=audio.duration, channels=audio.channels, caption=caption,
                           peak=audio.peak, gain=audio.gain, created_at=created)

        self._writer.submit(Command(self.store, record, f"audio {key}", prepare=encode))

    def log_artifact(self, source: str | os.PathLike[str] | bytes, name: str | None = None,
                     media_type: str | None = None) -> None:
        """Store a file, a directory (recursively) or bytes with the run.

        Files are copied now (content-addressed), so overwriting them afterwards, as a
        training loop does with ``last.pt``, cannot change what was recorded.
        """
        self._check_open()
        if isinstance(source, bytes | bytearray | memoryview):
            if not name:
                raise InvalidInputError("log_artifact(bytes) needs name= (its path in the run)")
            logical = _artifact_path(name)
            sha, size = self.store.blobs.put_bytes(bytes(source))
            self._record_artifact(logical, sha, size, media_type or _guess(name))
            return
        path = Path(source)
        if not path.exists():
            raise InvalidInputError(f"artifact {str(path)!r} does not exist")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            prefix = _artifact_path(name or path.name)
            for file in files:
                sha, size = self.store.blobs.put_file(file)
                rel = file.relative_to(path).as_posix()
                self._record_artifact(f"{prefix}/{rel}", sha, size, _guess(file.name))
            return
        logical = _artifact_path(name or path.name)
        sha, size = self.store.blobs.put_file(path)
        self._record_artifact(logical, sha, size, media_type or _guess(path.name))

    def _record_artifact(self, path: str, sha: str, size: int, media_type: str) -> None:
        created = _now()
        self._writer.submit(Command(
            self.store,
            lambda conn: artifacts.record(conn, self.id, path, sha, size, media_type, created),
            f"artifact {path}",
        ))

    # -- state ----------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged so far is in the store."""
        self._writer.barrier(self.store).result(timeout)

    @property
    def summary(self) -> dict[str, Summary]:
        """Per-key last/min/max/count of what was logged so far (flushes first)."""
        if self._closed is None:
            self.flush()
        with self.store.read() as conn:
            return summaries.for_runs(conn, [self.id])[self.id]

    @property
    def status(self) -> str:
        return self._status

    def finish(self, status: str = "finished", error: str | None = None,
               timeout: float | None = None) -> None:
        """End the run and block until everything it logged is stored. Safe to call twice."""
        if self._closed is not None:
            return
        if status not in {"finished", "failed"}:
            raise InvalidInputError(f"finish(status=...) must be 'finished' or 'failed', got "
                                    f"{status!r}")
        self._closed = f"run {self.id} has finished: start a new run with tympan.init()"
        self._status = status
        ended = _now()
        sink = self._sink

        def close(conn: Any) -> None:
            sink.live = False
            runs.set_status(conn, self.id, status, ended, error)
            _compact(conn, self.id)

        future = self._writer.submit(Command(self.store, close, "finish"))
        active.forget(self)
        future.add_done_callback(lambda _f: self._writer.detach(self.id))
        try:
            future.result(timeout)
        except FutureTimeout:
            raise StoreUnavailableError(
                f"run {self.id}: the store at {self.store.where} is still unwritable after "
                f"{timeout:g} s; {sink.pending_points} points wait in memory and are written "
                "if it recovers before the process exits"
            ) from None

    def fail(self, exc: BaseException) -> None:
        """Finish as failed, keeping the exception's traceback with the run."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.finish("failed", error=text)

    def _check_open(self) -> None:
        if self._closed is not None:
            raise RunStateError(self._closed)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.fail(exc)
        else:
            self.finish()


COMPACT_ABOVE = 16  # chunks per series before finish() merges them
COMPACT_TARGET = 1 << 20  # points per merged chunk: a 1M-point series reads as one row


def _compact(conn: Any, run_id: str) -> None:
    for key, count in metrics.chunk_counts(conn, run_id).items():
        if count > COMPACT_ABOVE:
            metrics.compact(conn, run_id, key, COMPACT_TARGET)


def _artifact_path(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"artifact name {name!r} must be a non-empty str")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or len(name) > 1000:
        raise InvalidInputError(
            f"artifact name {name!r} must be a relative path without '..' (at most 1000 chars)"
        )
    return "/".join(parts)


def _guess(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
