"""The transport to a store this process opens itself (SQLite file or PostgreSQL).

The tympan server's ingest routes use it too, over the server's store: a run logged over HTTP
is written by exactly this code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection

from tympan.errors import RunNotFoundError, RunStateError, StoreError, StoreUnavailableError
from tympan.records.record import resolve_run_id
from tympan.store import (
    Store,
    artifacts,
    environments,
    media,
    metrics,
    projects,
    runs,
    samples,
)
from tympan.store import summaries as summary_records
from tympan.store.summaries import Summary
from tympan.track.transport import (
    MEDIA_FILES,
    AudioClip,
    Blob,
    MediaItem,
    MetricBatch,
    NewRun,
    RunState,
    audio_path,
    media_path,
)

log = logging.getLogger("tympan")

COMPACT_ABOVE = 16  # chunks per series before finish() merges them
COMPACT_TARGET = 1 << 20  # points per merged chunk: a 1M-point series reads as one row


class LocalTransport:
    """Writes straight into a :class:`Store`; the writer thread retries on every tick."""

    def __init__(self, store: Store, project: str | None = None) -> None:
        self.store = store
        self.where = store.where
        self.ui_url = None
        # SQLite: a transaction of 128k points (~3 MiB) keeps the WAL near its checkpoint size
        # (store/engine.py), so a backlog never needs room for two copies of itself.
        self.max_piece = 1 << 17 if store.location.sqlite_path is not None else 1 << 20
        # The project a served token is bound to: run references resolve among its runs only.
        self.project = project

    def retry_delay(self, failures: int) -> float:
        return 0.0  # a local lock clears quickly: try again on the next flush

    def check_access(self, project: str) -> None:
        return None  # opening the store already proved it usable

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run: NewRun) -> None:
        parent_id = (resolve_run_id(self.store, run.parent, self.project) if run.parent
                     else None)
        with self.store.write() as conn:
            existing = runs.get(conn, run.id)
            project_id = projects.ensure(conn, run.project, run.created_at)
            if existing is not None:  # the same request again (its response was lost)
                if existing.project_id != project_id:
                    raise RunStateError(f"run id {run.id} is taken by a run of another project")
                return
            runs.insert(conn, id=run.id, project_id=project_id, name=run.name, status="running",
                        created_at=run.created_at, started_at=run.created_at,
                        heartbeat_at=run.created_at, config=run.config, tags=run.tags,
                        note=run.note, parent_id=parent_id, study_id=run.study, host=run.host,
                        pid=run.pid, seed=run.seed)

    def run_state(self, ref: str) -> RunState:
        run_id = resolve_run_id(self.store, ref, self.project)
        with self.store.read() as conn:
            row = runs.get(conn, run_id)
            project = projects.names(conn)[row.project_id]
            summary = summary_records.for_runs(conn, [run_id])[run_id]
            next_seq = metrics.next_seqs(conn, run_id)
            last_step = metrics.max_step(conn, run_id)
        return RunState(id=run_id, name=row.name, project=project, status=row.status,
                        host=row.host, pid=row.pid, started_at=row.started_at,
                        heartbeat_at=row.heartbeat_at, config=row.config or {},
                        tags=row.tags or [], summary=summary, next_seq=next_seq,
                        last_step=last_step)

    def reopen_run(self, run_id: str, host: str, pid: int, now: float) -> None:
        with self.store.write() as conn:
            self._require(conn, run_id)
            runs.reopen(conn, run_id, host, pid, now)

    def set_environment(self, run_id: str, digest: str, data: dict[str, Any],
                        now: float) -> None:
        with self.store.write() as conn:
            self._require(conn, run_id)
            env_id = environments.intern(conn, digest, data, now)
            runs.set_fields(conn, run_id, env_id=env_id)

    def set_seed(self, run_id: str, seed: int) -> None:
        with self.store.write() as conn:
            self._require(conn, run_id)
            runs.set_fields(conn, run_id, seed=seed)

    def set_config(self, run_id: str, config: dict[str, Any]) -> None:
        with self.store.write() as conn:
            self._require(conn, run_id)
            runs.set_fields(conn, run_id, config=config)

    def finish_run(self, run_id: str, status: str, ended_at: float, error: str | None) -> None:
        with self.store.write() as conn:
            self._require(conn, run_id)
            runs.set_status(conn, run_id, status, ended_at, error)
            counts = metrics.chunk_counts(conn, run_id)
        # Merging is only for faster reads, and it briefly needs room for a second copy of the
        # series: one transaction per series, after the status, and skipped on a full disk,
        # so a run always finishes (on a nearly full disk this used to be retried forever).
        for key, count in counts.items():
            if count <= COMPACT_ABOVE:
                continue
            try:
                with self.store.write() as conn:
                    metrics.compact(conn, run_id, key, COMPACT_TARGET)
            except StoreUnavailableError as exc:
                log.warning("tympan: run %s: could not merge the stored chunks of its series "
                            "(%s); every point is stored, reads are only slower", run_id, exc)
                return

    # -- metrics ----------------------------------------------------------------------------
    def write_metrics(self, batch: MetricBatch) -> None:
        with self.store.write() as conn:
            for run in batch.runs:
                metrics.append(conn, run.chunks)  # a chunk stored before is skipped
                summary_records.upsert(conn, run.run_id, run.summaries, batch.now)
            runs.beat(conn, batch.live, batch.now)

    def summary(self, run_id: str) -> dict[str, Summary]:
        with self.store.read() as conn:
            return summary_records.for_runs(conn, [run_id])[run_id]

    def send_leftovers(self, wait: bool) -> None:
        """Nothing: a local store is written directly, never journaled."""

    # -- files ------------------------------------------------------------------------------
    def keep_bytes(self, data: bytes) -> Blob:
        sha, size = self.store.blobs.put_bytes(data)
        return Blob(sha, size)

    def keep_file(self, path: str | os.PathLike[str]) -> Blob:
        sha, size = self.store.blobs.put_file(path)
        return Blob(sha, size)

    def record_artifact(self, run_id: str, path: str, blob: Blob, media_type: str,
                        created_at: float) -> None:
        with self._recording(blob) as conn:
            self._require(conn, run_id)
            artifacts.record(conn, run_id, path, blob.sha256, blob.size, media_type, created_at)

    def record_audio(self, run_id: str, clip: AudioClip, blob: Blob) -> None:
        path = audio_path(clip.key, clip.step, blob.sha256)
        with self._recording(blob) as conn:
            self._require(conn, run_id)
            artifact_id = artifacts.record(conn, run_id, path, blob.sha256, blob.size,
                                           "audio/flac", clip.created_at)
            fields = {"run_id": run_id, "key": clip.key, "step": clip.step,
                      "artifact_id": artifact_id, "created_at": clip.created_at}
            if samples.exists(conn, **fields):  # the same clip sent again
                return
            samples.record(conn, **fields, sample_rate=clip.sample_rate, frames=clip.frames,
                           duration=clip.duration, channels=clip.channels, caption=clip.caption,
                           peak=clip.peak, gain=clip.gain)

    def record_media(self, run_id: str, item: MediaItem, blob: Blob) -> None:
        path = media_path(item.kind, item.key, item.step, blob.sha256)
        with self._recording(blob) as conn:
            self._require(conn, run_id)
            artifact_id = artifacts.record(conn, run_id, path, blob.sha256, blob.size,
                                           MEDIA_FILES[item.kind][2], item.created_at)
            media.record(conn, run_id=run_id, kind=item.kind, key=item.key, step=item.step,
                         artifact_id=artifact_id, caption=item.caption, info=item.info,
                         created_at=item.created_at)

    @contextmanager
    def _recording(self, blob: Blob) -> Iterator[Connection]:
        """The write transaction of a record pointing at ``blob``, the blob touched first so
        that `tympan db gc` sees it in use while its record is being (re)tried."""
        try:
            self.store.blobs.touch(blob.sha256)
        except FileNotFoundError:
            raise StoreError(
                f"blob {blob.sha256} is no longer in {self.store.blobs.root} (was it collected "
                "by `tympan db gc` before its record landed?): log the file again"
            ) from None
        with self.store.write() as conn:
            yield conn

    # -- for the server ---------------------------------------------------------------------
    def project_of(self, run_ids: list[str]) -> dict[str, str | None]:
        """Each run's project name, None for a run that does not exist."""
        with self.store.read() as conn:
            names = projects.names(conn)
            found: dict[str, str | None] = {}
            for run_id in dict.fromkeys(run_ids):
                row = runs.get(conn, run_id)
                found[run_id] = None if row is None else names[row.project_id]
        return found

    def ensure_project(self, name: str, now: float) -> int:
        """The project's id, created if it does not exist (MLflow's experiments/create)."""
        with self.store.write() as conn:
            return projects.ensure(conn, name, now)

    def describe_run(self, run_id: str, *, name: str | None = None,
                     tags: list[str] | None = None, note: str | None = None,
                     parent_id: str | None = None) -> None:
        """Change what a run is called and labelled (MLflow's run name and tags)."""
        fields = {k: v for k, v in (("name", name), ("tags", tags), ("note", note),
                                    ("parent_id", parent_id)) if v is not None}
        with self.store.write() as conn:
            self._require(conn, run_id)
            if fields:
                runs.set_fields(conn, run_id, **fields)

    def run_status(self, run_id: str) -> str:
        with self.store.read() as conn:
            row = self._require(conn, run_id)
        return row.status

    def _require(self, conn: Any, run_id: str) -> Any:
        row = runs.get(conn, run_id)
        if row is None:
            raise RunNotFoundError(f"no run {run_id!r} in the store at {self.where}")
        return row

