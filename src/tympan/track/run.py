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
from tympan.store.summaries import Summary
from tympan.track import active, audio_sample
from tympan.track.commands import Command
from tympan.track.keeping import keep_artifact, keep_encoded
from tympan.track.mappings import RunConfig, RunSummary
from tympan.track.sink import Sink
from tympan.track.transport import AudioClip, MediaItem, Transport
from tympan.track.validate import check_key, check_step, check_text, to_config, to_number
from tympan.track.writer import WAKE_ROWS, Writer

_now = time.time
_MEDIA_TYPES = {
    ".flac": "audio/flac", ".wav": "audio/wav", ".pt": "application/octet-stream",
    ".ckpt": "application/octet-stream", ".onnx": "application/onnx",
    ".yaml": "application/yaml", ".yml": "application/yaml", ".jsonl": "application/jsonl",
}


class Run:
    """A run being recorded. Create it with ``tympan.init()``."""

    def __init__(self, *, id: str, name: str, project: str, config: dict[str, Any],
                 tags: list[str], transport: Transport, writer: Writer, sink: Sink,
                 next_step: int = 0) -> None:
        self.id = id
        self.name = name
        self.project = project
        self._config = RunConfig(config, self._change_config)
        self.tags = tags
        self.transport = transport  # the local store or the tympan server it is logged to
        self._writer = writer
        self._sink = sink
        self._keys: set[str] = set()
        self._next_step = next_step
        self._closed: str | None = None  # why logging is no longer allowed, once it is not
        self._status: str = "running"
        self._background: list[Any] = []  # system metrics, console capture: stopped at finish

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
        elif type(step) is not int or not 0 <= step < 2**62:  # 2**62 folds to a constant
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

    def _record_at_current_step(self, data: dict[str, float]) -> None:
        """Append points at the last step logged without moving the next step (for samples a
        background thread takes: system metrics)."""
        step = max(self._next_step - 1, 0)
        sink = self._sink
        with sink.lock:
            row = len(sink.steps)
            sink.steps.append(step)
            sink.times.append(_now())
            for key, value in data.items():
                column = sink.columns.get(key)
                if column is None:
                    column = sink.columns[key] = ([], [])
                column[0].append(row)
                column[1].append(value)

    @staticmethod
    def _as_dict(data: Any) -> dict[str, Any]:
        if hasattr(data, "items") and hasattr(data, "keys"):
            return dict(data.items())
        raise InvalidInputError(
            f"log() takes a dict of metric name -> number, got {type(data).__name__}"
        )

    @property
    def config(self) -> RunConfig:
        """The run's config, a dict: ``run.config["lr"] = 3e-4``, ``run.config.update(...)``
        and deletions, at any depth, are stored (raise once the run has finished)."""
        return self._config

    @config.setter
    def config(self, values: Any) -> None:
        self._config.replace_all(to_config(values))

    def update_config(self, values: Any) -> None:
        """Merge ``values`` (a dict, dataclass, Namespace or pydantic model) into the run's
        config and store it: nested dicts merge key by key, anything else replaces."""
        self._config.replace_all(_merged(to_config(self._config), to_config(values)))

    def _change_config(self, change: Any) -> Any:
        """Apply a change to ``run.config`` and store the whole config (see RunConfig)."""
        self._check_open()
        result = change()
        snapshot = to_config(self._config)  # a copy: later changes go in a later write
        self._writer.submit(Command(self.transport,
                                    lambda t: t.set_config(self.id, snapshot), "config"))
        return result

    @property
    def step(self) -> int:
        """The step the next ``log()`` without an explicit step will use."""
        return self._next_step

    # -- audio, images, tables and files -----------------------------------------------------------
    def log_audio(self, key: str, waveform: Any, sample_rate: int, step: int | None = None,
                  caption: str | None = None) -> None:
        """Record an audio clip (numpy or torch; mono or multi-channel), stored as FLAC."""
        self._check_open()
        check_key(key, "audio")
        step = self._next_step if step is None else check_step(step)
        _check_caption("audio", key, caption)
        audio = audio_sample.prepare(key, waveform, sample_rate)
        clip = AudioClip(key=key, step=step, sample_rate=audio.sample_rate, frames=audio.frames,
                         duration=audio.duration, channels=audio.channels, caption=caption,
                         peak=audio.peak, gain=audio.gain, created_at=_now())
        keep_encoded(self._writer, self.transport, self.id, f"audio {key}", audio.data.nbytes,
                     audio.flac, lambda t, blob: t.record_audio(self.id, clip, blob))

    def log_image(self, key: str, image: Any, step: int | None = None,
                  caption: str | None = None) -> None:
        """Record an image, stored as PNG: a numpy array or torch tensor ``(H, W)``,
        ``(H, W, C)`` or ``(C, H, W)`` (C = 1, 3 or 4), a PIL image or a matplotlib figure.

        Floats in [0, 1] are taken as intensities; other floats (a spectrogram in dB) are
        scaled from their min..max, and that range is kept with the image.
        """
        from tympan.track import image as images

        self._check_open()
        check_key(key, "image")
        step = self._next_step if step is None else check_step(step)
        _check_caption("image", key, caption)
        prepared = images.prepare(key, image)
        size = len(prepared.encoded) if prepared.encoded is not None else prepared.pixels.nbytes
        self._log_media(MediaItem("image", key, step, caption, prepared.info(), _now()),
                        prepared.png, size)

    def log_table(self, key: str, data: Any, columns: list[str] | None = None,
                  step: int | None = None, caption: str | None = None) -> None:
        """Record a table, stored as JSON with its columns: a pandas DataFrame, rows (lists
        or tuples) with ``columns=``, a list of dicts, or a dict of column -> values."""
        from tympan.track import table as tables

        self._check_open()
        check_key(key, "table")
        step = self._next_step if step is None else check_step(step)
        _check_caption("table", key, caption)
        prepared = tables.prepare(key, data, columns)
        size = 16 * len(prepared.rows) * max(1, len(prepared.columns))  # about, as Python holds it
        self._log_media(MediaItem("table", key, step, caption, tables.info(prepared), _now()),
                        lambda: tables.encode(prepared), size)

    def _log_media(self, item: MediaItem, encode: Any, size: int) -> None:
        keep_encoded(self._writer, self.transport, self.id, f"{item.kind} {item.key}", size,
                     encode, lambda t, blob: t.record_media(self.id, item, blob))

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
            self._keep(artifact_path(name), bytes(source), media_type or _guess(name))
            return
        path = Path(source)
        if not path.exists():
            raise InvalidInputError(f"artifact {str(path)!r} does not exist")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            prefix = artifact_path(name or path.name)
            for file in files:
                rel = file.relative_to(path).as_posix()
                self._keep(f"{prefix}/{rel}", file, _guess(file.name))
            return
        self._keep(artifact_path(name or path.name), path, media_type or _guess(path.name))

    def _keep(self, path: str, source: Path | bytes, media_type: str) -> None:
        keep_artifact(self._writer, self.transport, self.id, path, source, media_type)

    def register_model(self, name: str, artifact: str = "model.pt", **options: Any) -> Any:
        """Register the checkpoint this run logged as ``artifact`` as the next version of
        model ``name`` and return the ModelVersion; ``options`` are those of
        ``tympan.models.register`` (recipe, data, parent, description). Flushes first."""
        from tympan.models import register  # the public registry API, loaded on first use

        store = getattr(self.transport, "store", None)  # a local store, else the server URL
        where = store.location.text if store is not None else self.transport.where
        return register(self, name, artifact=artifact, store=where, **options)

    # -- state ----------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged so far is in the store."""
        self._writer.barrier(self.transport).result(timeout)

    @property
    def summary(self) -> RunSummary:
        """Per-key last/min/max/count of what was logged so far (flushes first), a dict.
        ``run.summary[key] = value`` logs ``value`` at the current step, so it is stored and
        summarised like any metric (W&B's ``run.summary[...] = ...``)."""
        return RunSummary(self._read_summary(), self._log_at_current_step, self._read_summary)

    def _read_summary(self) -> dict[str, Summary]:
        if self._closed is None:
            self.flush()
        return self.transport.summary(self.id)

    def _log_at_current_step(self, values: dict[str, Any]) -> None:
        self.log(values, step=max(self._next_step - 1, 0))

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
        for task in self._background:  # their last samples and output go in before the end
            task.stop()
        self._closed = f"run {self.id} has finished: start a new run with tympan.init()"
        self._status = status
        ended = _now()
        sink = self._sink

        def close(t: Transport) -> None:
            sink.live = False
            t.finish_run(self.id, status, ended, error)

        future = self._writer.submit(Command(self.transport, close, "finish", awaited=True))
        active.forget(self)
        future.add_done_callback(lambda _f: self._writer.detach(self.id))
        try:
            future.result(timeout)
        except FutureTimeout:
            raise StoreUnavailableError(
                f"run {self.id}: the store at {self.transport.where} is still unwritable after "
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


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _check_caption(what: str, key: str, caption: object) -> None:
    if caption is not None and not isinstance(caption, str):
        raise InvalidInputError(f"{what} {key!r}: caption must be a str, got {caption!r}")
    if caption is not None:
        check_text(caption, f"{what} {key!r}: caption")


def artifact_path(name: str) -> str:
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
