"""Storage: SQL tables and content-addressed blobs behind a narrow interface.

``open_store`` gives a :class:`Store` (an engine, a blob root and where they are); the record
modules (``runs``, ``metrics``, ``summaries``, ``artifacts``, ``samples``, ``environments``,
``projects``) are plain functions over a SQLAlchemy connection, so one write transaction can
touch several kinds of record. This package knows SQL and files, not what a run means.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, select, text

from tympan import settings
from tympan.errors import StoreCorruptError, StoreNotFoundError
from tympan.store import versioning
from tympan.store.blobs import BlobStore
from tympan.store.engine import WRITE, make_engine, prepare_new_sqlite
from tympan.store.failures import translated
from tympan.store.location import StoreLocation, parse_location, redact
from tympan.store.schema import meta

__all__ = ["Store", "StoreLocation", "open_store", "parse_location", "store_revision",
           "upgrade_store"]


@dataclass
class Store:
    location: StoreLocation
    engine: Engine
    blobs: BlobStore
    where: str = field(init=False)

    def __post_init__(self) -> None:
        self.where = self.location.describe()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with translated(self.where), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        with translated(self.where), self.engine.connect() as conn:
            conn = conn.execution_options(**WRITE)
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(
    where: str | os.PathLike[str] | None = None,
    *,
    create: bool = False,
    check_schema: bool = True,
) -> Store:
    """Open the store at ``where`` (default: TYMPAN_STORE, else ./.tympan).

    With ``create``, a missing store is made; otherwise a missing store is an error, so a
    typo in a path never silently creates an empty store. A store with another schema
    revision is refused (``tympan db upgrade`` migrates it).
    """
    location = parse_location(where if where is not None else settings.get("TYMPAN_STORE"))
    if location.sqlite_path is not None:
        _check_sqlite_file(location, create)
    engine = make_engine(location, settings.get("TYMPAN_BUSY_TIMEOUT"))
    where_text = location.describe()
    try:
        with translated(where_text):
            if check_schema:
                revision = versioning.check(engine, where_text)
            else:
                revision = versioning.current_revision(engine)
            if revision is None:
                if not create and check_schema:
                    raise StoreNotFoundError(
                        f"{where_text} holds no tympan store yet: start a run with "
                        "tympan.init() or run `tympan db upgrade` to create one"
                    )
                if create:
                    _create(engine, location)
            root = _artifact_root(engine, location)
    except BaseException:
        engine.dispose()
        raise
    return Store(location, engine, BlobStore(root))


def store_revision(where: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
    """(the store's schema revision, where the store is), whatever the revision."""
    with open_store(where, check_schema=False) as store, translated(store.where):
        return versioning.current_revision(store.engine), store.where


def upgrade_store(where: str | os.PathLike[str] | None = None) -> tuple[str | None, str, str]:
    """Migrate a store to this tympan's schema, creating it if there is none yet.

    Returns (revision before, None for a new store; revision after; where the store is).
    """
    try:
        before, _ = store_revision(where)
    except StoreNotFoundError:
        before = None
    if before is None:
        with open_store(where, create=True) as store:
            return None, versioning.HEAD, store.where
    with open_store(where, check_schema=False) as store, translated(store.where):
        before, after = versioning.upgrade(store.engine)
        return before, after, store.where


def _check_sqlite_file(location: StoreLocation, create: bool) -> None:
    path = location.sqlite_path
    assert path is not None
    if path.exists():
        if path.is_dir():
            raise StoreCorruptError(f"{path} is a directory, not a tympan database file")
        with open(path, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise StoreCorruptError(f"{path} is not a tympan store (not a SQLite database)")
        return
    if not create:
        hint = "" if location.text != ".tympan" else " in this directory"
        raise StoreNotFoundError(
            f"no tympan store at {redact(location.text)}{hint}: pass --store or set TYMPAN_STORE"
        )
    path.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def _creation_lock(engine: Engine, location: StoreLocation) -> Iterator[None]:
    """Serialise store creation across processes that all find it missing at once."""
    if location.sqlite_path is not None:
        import fcntl

        lock_path = location.sqlite_path.with_name(location.sqlite_path.name + ".create-lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(7270001)"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(7270001)"))
            conn.commit()


def _create(engine: Engine, location: StoreLocation) -> None:
    with _creation_lock(engine, location):
        if versioning.current_revision(engine) is not None:
            return  # another process created it while we waited
        prepare_new_sqlite(engine)
        versioning.upgrade(engine)
        root = settings.get("TYMPAN_ARTIFACTS") or location.default_artifacts
        if location.sqlite_path is None and "://" not in root:
            root = str(Path(root).absolute())  # a shared server store needs a root for all
        with engine.begin() as conn:
            conn.execute(meta.insert(), [
                {"key": "artifact_root", "value": root},
                {"key": "created_at", "value": repr(time.time())},
            ])


def _artifact_root(engine: Engine, location: StoreLocation) -> str:
    with engine.connect() as conn:
        if not inspect(conn).has_table("meta"):  # an empty database opened unchecked
            return location.default_artifacts
        root = conn.execute(select(meta.c.value).where(meta.c.key == "artifact_root")).scalar()
    if root is None:
        root = location.default_artifacts
    if "://" in root or os.path.isabs(root) or location.sqlite_path is None:
        return root
    return str(location.sqlite_path.parent / root)
