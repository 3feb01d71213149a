"""Where stored runs are read from: a store this process opens (:class:`LocalSource`), or a
team server's JSON API (:class:`~tympan.records.remote.HttpSource`, with a token).

The two share one interface, :class:`RunSource`, so ``tympan runs/show/diff/export``,
``tympan.load_run`` and ``tympan.find_runs`` do not care which one they have: with
``TYMPAN_STORE=http://host:port`` they read through the server, which answers with the very
functions ``LocalSource`` calls over its own store (project scoping included). A
:class:`~tympan.records.record.RunRecord` keeps its source and reads its history, files and
environment through it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tympan.records.query import RunQuery
    from tympan.records.record import RunRecord
    from tympan.store import Store
    from tympan.store.metrics import Series

__all__ = ["LocalSource", "RunSource", "open_source", "opened_source", "shared_source"]

MEDIA_KINDS = ("image", "table")


class RunSource(Protocol):
    """The reads of stored runs, wherever they are stored."""

    where: str  # for messages: a path, a redacted database URL or the server URL

    def run(self, ref: str) -> RunRecord:
        """A run by id, unique id prefix, unique name or ``models:/`` URI."""
        ...

    def find_runs(self, query: RunQuery) -> list[RunRecord]:
        """The runs ``query`` selects, in its order, with their summaries."""
        ...

    def history(self, run_id: str, key: str) -> Series: ...

    def metric_keys(self, run_id: str) -> list[str]: ...

    def environment(self, record: RunRecord) -> dict[str, Any] | None: ...

    def artifacts(self, run_id: str) -> list[Any]:
        """Rows with path, size, media_type, sha256, created_at."""
        ...

    def artifact(self, run_id: str, path: str) -> Any | None:
        """The row of the artifact logged under ``path``, or None."""
        ...

    def audio_samples(self, run_id: str) -> list[Any]:
        """Rows with id, key, step, sample_rate, frames, duration, channels, caption, peak,
        gain, path, sha256."""
        ...

    def media(self, run_id: str, kind: str) -> list[Any]:
        """Images or tables: rows with id, key, step, caption, info, path, sha256, size."""
        ...

    def read_blob(self, run_id: str, sha256: str) -> bytes:
        """The bytes of one of the run's files (an artifact, a clip, an image, a table)."""
        ...

    def close(self) -> None: ...


class LocalSource:
    """Runs read with SQL from a store this process opened."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.where = store.where

    def run(self, ref: str) -> RunRecord:
        from tympan.records.record import get_run

        return get_run(self.store, ref)

    def find_runs(self, query: RunQuery) -> list[RunRecord]:
        from tympan.records.table import find_runs

        return find_runs(self.store, query)

    def history(self, run_id: str, key: str) -> Series:
        from tympan.store import metrics  # numpy: not for a run's overview

        with self.store.read() as conn:
            return metrics.read(conn, run_id, key)

    def metric_keys(self, run_id: str) -> list[str]:
        from tympan.store import metrics

        with self.store.read() as conn:
            return metrics.keys(conn, run_id)

    def environment(self, record: RunRecord) -> dict[str, Any] | None:
        from tympan.store import environments

        with self.store.reader() as conn:
            return environments.get(conn, record.env_id)

    def artifacts(self, run_id: str) -> list[Any]:
        from tympan.store import artifacts

        with self.store.reader() as conn:
            return artifacts.for_run(conn, run_id)

    def artifact(self, run_id: str, path: str) -> Any | None:
        from tympan.store import artifacts

        with self.store.reader() as conn:
            return artifacts.get(conn, run_id, path)

    def audio_samples(self, run_id: str) -> list[Any]:
        from tympan.store import samples

        with self.store.reader() as conn:
            return samples.for_run(conn, run_id)

    def media(self, run_id: str, kind: str) -> list[Any]:
        from tympan.store import media

        with self.store.reader() as conn:
            return media.for_run(conn, run_id, kind)

    def read_blob(self, run_id: str, sha256: str) -> bytes:
        return self.store.blobs.read(sha256)

    def close(self) -> None:
        self.store.close()


def open_source(where: str | os.PathLike[str] | None = None) -> RunSource:
    """The runs at ``where`` (default TYMPAN_STORE): a store opened here, or a tympan server
    (``http(s)://``) reached with TYMPAN_TOKEN. The caller closes it."""
    from tympan import settings
    from tympan.store.location import is_remote

    location = os.fspath(where) if where is not None else settings.get("TYMPAN_STORE")
    if is_remote(location):
        from tympan.records.remote import HttpSource

        return HttpSource(location, settings.get("TYMPAN_TOKEN"))
    from tympan.store import open_store

    return LocalSource(open_store(location))


def shared_source(where: str | os.PathLike[str] | None = None) -> RunSource:
    """The runs at ``where`` for the Python API: a store shared by the whole process
    (``tympan.track.stores``), or one client per server and token, closed at exit."""
    from tympan import settings
    from tympan.store.location import is_remote

    location = os.fspath(where) if where is not None else settings.get("TYMPAN_STORE")
    if not is_remote(location):
        from tympan.track.stores import shared_store

        return LocalSource(shared_store(location))
    import atexit

    from tympan.records.remote import HttpSource

    key = (location.strip().rstrip("/"), settings.get("TYMPAN_TOKEN"))
    with _lock:  # one connection pool per server and token, as for logging runs
        source = _remote.get(key)
        if source is None:
            source = _remote[key] = HttpSource(*key)
            atexit.register(source.close)
        return source


_remote: dict[tuple[str, str | None], RunSource] = {}
_lock = threading.Lock()


@contextmanager
def opened_source(where: str | None) -> Iterator[RunSource]:
    """``open_source(where)``, closed when the block ends (the CLI's commands)."""
    source = open_source(where)
    try:
        yield source
    finally:
        source.close()
