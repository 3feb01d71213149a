"""The seam between a ``Run`` and where it is stored: a local store, or a tympan server.

A run performs only the few writes below. ``LocalTransport`` (``local.py``) does them with SQL
on a :class:`~tympan.store.Store`; ``HttpTransport`` (``remote.py``) sends them to a tympan
server (``TYMPAN_STORE=http://host:port``), whose ingest routes hand them to a
``LocalTransport`` over the server's own store. Nothing else in ``tympan.track`` knows which
one a run has.

Every write is idempotent, so a batch whose response was lost can simply be sent again:
metric chunks are keyed by (run, key, seq), artifacts by (run, path), audio clips, images
and tables by what they are, and blobs by their sha256.

Errors: a write that may succeed later (store locked, server down, 5xx, timeout) raises
``StoreUnavailableError`` (or ``OSError``) and the writer keeps the data and retries; any
other ``TympanError`` (bad token, wrong project, malformed data) is final.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from tympan.store.metrics import Chunk
from tympan.store.summaries import Summary


@dataclass(frozen=True)
class NewRun:
    """What ``tympan.init()`` records about a new run."""

    id: str
    project: str
    name: str
    config: dict[str, Any]
    tags: list[str]
    note: str
    parent: str | None  # as the user wrote it: an id, id prefix or unique name
    study: str | None
    host: str | None
    pid: int | None
    seed: int | None
    created_at: float


@dataclass
class RunState:
    """What resuming a run needs to know about it."""

    id: str
    name: str
    project: str
    status: str
    host: str | None
    pid: int | None
    started_at: float
    heartbeat_at: float | None
    config: dict[str, Any]
    tags: list[str]
    summary: dict[str, Summary]
    next_seq: dict[str, int]
    last_step: int | None


@dataclass(frozen=True)
class RunMetrics:
    """One run's share of a flush: new chunks, and the summaries of the keys they touch."""

    run_id: str
    chunks: list[Chunk]
    summaries: dict[str, Summary]

    @property
    def points(self) -> int:
        return sum(len(c.steps) for c in self.chunks)


@dataclass(frozen=True)
class MetricBatch:
    """One flush: metrics of some runs, and a heartbeat for the runs still live."""

    runs: list[RunMetrics]
    live: list[str]
    now: float


@dataclass(frozen=True)
class Blob:
    """Content kept for a run. A remote transport holds it (in memory, or as a staged copy on
    local disk) until it is uploaded; a local one has stored it already."""

    sha256: str
    size: int
    data: bytes | None = field(default=None, repr=False)
    staged: str | None = None


@dataclass(frozen=True)
class AudioClip:
    """An encoded FLAC clip's description, as the audio_samples table holds it."""

    key: str
    step: int
    sample_rate: int
    frames: int
    duration: float
    channels: int
    caption: str | None
    peak: float
    gain: float
    created_at: float


def audio_path(key: str, step: int, sha256: str) -> str:
    """Where a clip is filed among the run's artifacts."""
    return f"audio/{key}/step-{step:08d}-{sha256[:12]}.flac"


@dataclass(frozen=True)
class MediaItem:
    """An image (PNG) or a table (JSON) logged under a key at a step."""

    kind: str  # "image" or "table"
    key: str
    step: int
    caption: str | None
    info: dict[str, Any]  # image: width, height, mode[, scaled_from]; table: columns, rows
    created_at: float


# kind -> (folder among the run's artifacts, file suffix, media type)
MEDIA_FILES = {"image": ("images", "png", "image/png"),
               "table": ("tables", "json", "application/json")}


def media_path(kind: str, key: str, step: int, sha256: str) -> str:
    """Where an image or table is filed among the run's artifacts."""
    folder, suffix, _ = MEDIA_FILES[kind]
    return f"{folder}/{key}/step-{step:08d}-{sha256[:12]}.{suffix}"


class Transport(Protocol):
    """The writes (and the two reads) a run makes, wherever its store is."""

    where: str  # for messages: a path, a redacted database URL or the server URL
    ui_url: str | None  # the web UI showing these runs, when the store is a tympan server
    max_piece: int  # points per write at most: a flush fits in one, a backlog goes in pieces

    def retry_delay(self, failures: int) -> float:
        """Seconds to wait before retrying after ``failures`` failed attempts in a row."""
        ...

    def check_access(self, project: str) -> None:
        """Raise at once if runs of ``project`` cannot be written here (bad token, no server)."""
        ...

    def create_run(self, run: NewRun) -> None: ...

    def run_state(self, ref: str) -> RunState:
        """Resolve a run id, id prefix or unique name, and read what resuming it needs."""
        ...

    def reopen_run(self, run_id: str, host: str, pid: int, now: float) -> None: ...

    def set_environment(self, run_id: str, digest: str, data: dict[str, Any],
                        now: float) -> None: ...

    def set_seed(self, run_id: str, seed: int) -> None: ...

    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        """Replace the run's config (the whole of it: sent again, no change)."""
        ...

    def write_metrics(self, batch: MetricBatch) -> None:
        """Chunks, summaries and heartbeats; all of a batch or (locally) none of it."""
        ...

    def keep_bytes(self, data: bytes) -> Blob: ...

    def keep_file(self, path: str | os.PathLike[str]) -> Blob:
        """Copy a file now, so changing it afterwards cannot change what is recorded."""
        ...

    def record_artifact(self, run_id: str, path: str, blob: Blob, media_type: str,
                        created_at: float) -> None: ...

    def record_audio(self, run_id: str, clip: AudioClip, blob: Blob) -> None: ...

    def record_media(self, run_id: str, item: MediaItem, blob: Blob) -> None: ...

    def finish_run(self, run_id: str, status: str, ended_at: float,
                   error: str | None) -> None: ...

    def summary(self, run_id: str) -> dict[str, Summary]: ...

    def send_leftovers(self, wait: bool) -> None:
        """Send what earlier processes journaled on disk for this store while it was down (a
        tympan server: see ``sync.py``), in the background or, ``wait``, first."""
        ...


