"""Storing a run read from another tracker, so that importing it again adds only what is new.

A source run's tympan id is a digest of its *source* (``tensorboard:/abs/logdir/run``,
``mlflow:URI#RUN_ID``), and the source is kept in the run's note. Importing the same source
again finds that run and

- appends to each metric only the points past those already stored (a source's histories
  only grow: TensorBoard appends events, MLflow appends metric values), as new chunks;
- records audio, images, tables and artifacts again, which stores nothing twice (their
  records are keyed by what they are and their blobs by sha256);
- replaces the config, and ends the run as the source says.

Everything goes through the :class:`~tympan.track.transport.Transport` a run writes through,
so the same import works into a local store and into a tympan server.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tympan.errors import InvalidInputError, RunNotFoundError
from tympan.ids import ID_ALPHABET, ID_LENGTH
from tympan.store.metrics import Chunk
from tympan.track import audio_sample
from tympan.track import image as images
from tympan.track import table as tables
from tympan.track.sink import summarize
from tympan.track.transport import (
    AudioClip,
    MediaItem,
    MetricBatch,
    NewRun,
    RunMetrics,
    Transport,
)
from tympan.track.validate import KEY_PATTERN, check_name, check_tags, to_config

ENDED = ("finished", "failed")


@dataclass
class Points:
    """One metric's full history at the source, in the order it was logged."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # wall clock, seconds

    def add(self, step: int, value: float, wall_time: float) -> None:
        self.steps.append(step)
        self.values.append(value)
        self.times.append(wall_time)

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class Audio:
    key: str
    step: int
    waveform: Any  # (frames,) or (frames, channels)
    sample_rate: int
    caption: str | None
    created_at: float


@dataclass(frozen=True)
class Media:
    """An image (PNG bytes) or a table (encoded JSON), described as the media table wants."""

    item: MediaItem
    data: bytes


@dataclass(frozen=True)
class File:
    path: str
    data: bytes
    media_type: str
    created_at: float


@dataclass
class SourceRun:
    """A run as another tracker recorded it, in tympan's terms."""

    source: str  # where it came from: its identity across imports
    project: str
    name: str
    created_at: float
    status: str = "finished"  # finished, failed, or running (left running)
    ended_at: float | None = None
    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    note: str = ""
    environment: dict[str, Any] | None = None
    metrics: dict[str, Points] = field(default_factory=dict)
    audio: list[Audio] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # what tympan keeps no record of

    def skip(self, what: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1

    def points(self, key: str) -> Points:
        """The series of ``key`` (made a valid tympan key), created empty on first use."""
        return self.metrics.setdefault(metric_key(key), Points())


@dataclass(frozen=True)
class Imported:
    """What one import of one source run did."""

    run_id: str
    name: str
    project: str
    source: str
    created: bool  # False: the run existed from an earlier import
    points: int  # metric points added by this import
    keys: int
    audio: int
    media: int
    files: int
    skipped: dict[str, int]


def run_id_for(source: str) -> str:
    """The tympan run id of a source: the same source always maps to the same id."""
    number = int.from_bytes(hashlib.sha256(source.encode()).digest(), "big")
    out = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, len(ID_ALPHABET))
        out.append(ID_ALPHABET[digit])
    return "".join(out)


def metric_key(name: str) -> str:
    """A tympan key for another tracker's metric, tag or parameter name: characters tympan
    keys cannot hold (spaces, brackets, ...) become ``_``; at most 200 characters."""
    cleaned = "".join(c if KEY_PATTERN.fullmatch("a" + c) else "_" for c in name.strip())
    if not cleaned or not KEY_PATTERN.fullmatch(cleaned[0]):
        cleaned = "_" + cleaned
    return cleaned[:200]


def image_media(key: str, step: int, encoded: bytes, caption: str | None,
                created_at: float) -> Media:
    """An encoded image (PNG; other formats when Pillow can convert them)."""
    if not encoded.startswith(images.PNG_SIGNATURE):
        encoded = _to_png(key, encoded)
    width, height, mode = images.png_size(encoded)
    info = {"width": width, "height": height, "mode": mode}
    return Media(MediaItem("image", key, step, caption, info, created_at), encoded)


def table_media(key: str, step: int, rows: Any, columns: list[str] | None,
                caption: str | None, created_at: float) -> Media:
    prepared = tables.prepare(key, rows, columns)
    return Media(MediaItem("table", key, step, caption, tables.info(prepared), created_at),
                 tables.encode(prepared))


def _to_png(key: str, encoded: bytes) -> bytes:
    import io

    try:
        from PIL import Image
    except ImportError:
        raise InvalidInputError(f"image {key!r} is not a PNG; converting it needs Pillow: "
                                "pip install pillow") from None
    with Image.open(io.BytesIO(encoded)) as img:
        return images.prepare(key, img).png()


def write_run(transport: Transport, run: SourceRun, parent: str | None = None) -> Imported:
    """Store ``run`` (or what is new in it, if an earlier import stored it); ``parent`` is
    the source of a run imported before it that it belongs to."""
    check_name(run.project, "project")
    run_id = run_id_for(run.source)
    config = to_config(run.config)
    tags = check_tags(run.tags)
    note = run.note or f"imported from {run.source}"
    try:
        state = transport.run_state(run_id)
        created = False
        stored_counts = {key: s.count for key, s in state.summary.items()}
        next_seq = dict(state.next_seq)
        status = state.status
        if state.project != run.project:
            raise InvalidInputError(
                f"{run.source} was imported before into project {state.project!r} (run "
                f"{run_id}); import it into that project, or delete that run first")
    except RunNotFoundError:
        created = True
        transport.create_run(NewRun(
            id=run_id, project=run.project, name=check_name(run.name, "run name"),
            config=config, tags=tags, note=note,
            parent=None if parent is None else run_id_for(parent), study=None, host=None, pid=None,
            seed=None, created_at=run.created_at))
        stored_counts, next_seq, status = {}, {}, "running"
    chunks, summaries, added = [], {}, 0
    for key, points in run.metrics.items():
        have = stored_counts.get(key, 0)
        if len(points) <= have:
            continue
        steps = np.asarray(points.steps, dtype=np.int64)
        values = np.asarray(points.values, dtype=np.float64)
        times = np.asarray(points.times, dtype=np.float64)
        chunks.append(Chunk(run_id, key, next_seq.get(key, 0), steps[have:], values[have:],
                            times[have:]))
        summaries[key] = summarize(steps, values)
        added += len(points) - have
    if chunks and status in ENDED:  # more points for an ended run: open it, end it again
        transport.reopen_run(run_id, socket.gethostname(), os.getpid(), time.time())
        status = "running"
    if chunks:
        transport.write_metrics(MetricBatch([RunMetrics(run_id, chunks, summaries)], [],
                                            time.time()))
    if not created:
        transport.set_config(run_id, config)
    if run.environment is not None:
        env = to_config(run.environment)
        digest = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()
        transport.set_environment(run_id, digest, env, run.created_at)
    for clip in run.audio:
        prepared = audio_sample.prepare(clip.key, clip.waveform, clip.sample_rate)
        blob = transport.keep_bytes(prepared.flac())
        transport.record_audio(run_id, AudioClip(
            key=clip.key, step=clip.step, sample_rate=prepared.sample_rate,
            frames=prepared.frames, duration=prepared.duration, channels=prepared.channels,
            caption=clip.caption, peak=prepared.peak, gain=prepared.gain,
            created_at=clip.created_at), blob)
    for media in run.media:
        transport.record_media(run_id, media.item, transport.keep_bytes(media.data))
    for file in run.files:
        transport.record_artifact(run_id, file.path, transport.keep_bytes(file.data),
                                  file.media_type, file.created_at)
    if run.status in ENDED and status not in ENDED:
        ended = run.ended_at if run.ended_at is not None else time.time()
        transport.finish_run(run_id, run.status, ended, run.error)
    return Imported(run_id=run_id, name=run.name, project=run.project, source=run.source,
                    created=created, points=added, keys=len(run.metrics), audio=len(run.audio),
                    media=len(run.media), files=len(run.files),
                    skipped=dict(run.skipped))
