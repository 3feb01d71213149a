"""Storage: SQL tables and content-addressed blobs behind a narrow interface.

``open_store`` gives a :class:`Store` (an engine, a blob root and where they are); the record
modules (``runs``, ``metrics``, ``summaries``, ``artifacts``, ``samples``, ``environments``,
``projects``) are plain functions over a SQLAlchemy connection, so one write transaction can
touch several kinds of record. Their common reads are built with ``statements``, which also
runs them on a :meth:`Store.reader` of a SQLite store through ``sqlite3`` alone: a command
that only reads (``tympan runs``, ``tympan show``) then never imports SQLAlchemy, the engine
being made on first use. This package knows SQL and files, not what a run means.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tympan import settings
from tympan.errors import StoreNotFoundError
from tympan.store import integrity, statements, versioning
from tympan.store.blobs import BlobStore
from tympan.store.failures import translated
from tympan.store.location import StoreLocation, parse_location, redact
from tympan.store.sqlite_reader import SqliteReader

if TYPE_CHECKING:  # SQLAlchemy loads when a store is first written or read with it
    from sqlalchemy import Connection, Engine

__all__ = ["Store", "StoreLocation", "check_store", "open_store", "parse_location",
           "store_revision", "upgrade_store"]


@dataclass
class Store:
    location: StoreLocation
    busy_timeout: float  # seconds a connection waits for another process's lock
    blobs: BlobStore = field(init=False)
    where: str = field(init=False)
    _engine: Engine | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.where = self.location.describe()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, made on first use (a SQLite store opened only to be read
        through :meth:`reader` never imports SQLAlchemy)."""
        if self._engine is None:
            from tympan.store.engine import make_engine

            self._engine = make_engine(self.location, self.busy_timeout)
        return self._engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """A read-only connection for the reads of ``tympan.store.statements``: on SQLite, a
        :class:`~tympan.store.sqlite_reader.SqliteReader` (no SQLAlchemy unless a read needs
        it); elsewhere the connection of :meth:`read`."""
        path = self.location.sqlite_path
        if path is None:
            with self.read() as conn:
                yield conn
            return
        with self.translated(), SqliteReader(path, self.busy_timeout) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        from tympan.store.engine import WRITE

        with self.translated(), self.engine.connect() as conn:
            conn = conn.execution_options(**WRITE)
            with conn.begin():
                yield conn

    def translated(self) -> AbstractContextManager[None]:
        """Driver errors inside re-raised as StoreError naming this store (``translated``)."""
        return translated(self.where, self.location.sqlite_path)

    def verify(self) -> None:
        """Refuse a damaged SQLite file (quick_check) before anything is written to it."""
        if self.location.sqlite_path is not None:
            with self.translated():
                integrity.verify(self.engine, self.location.sqlite_path)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

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
    if location.sqlite_path is not None and not _sqlite_file_exists(location, create):
        _create_sqlite_file(location)
    store = Store(location, settings.get("TYMPAN_BUSY_TIMEOUT"))
    try:
        with store.translated():
            root = _opened(store, create, check_schema)
    except BaseException:
        store.close()
        raise
    store.blobs = BlobStore(root)
    return store


def _opened(store: Store, create: bool, check_schema: bool) -> str:
    """Check the store's schema revision (creating its schema if asked); its artifact root.
    A SQLite store with a schema is checked through the stdlib driver alone."""
    if store.location.sqlite_path is not None and check_schema:
        with store.reader() as conn:
            revision = versioning.checked(versioning.revision_of(conn), store.where)
            if revision is not None:
                return _root(statements.scalar(conn, _artifact_root_query), store.location)
    elif check_schema:
        revision = versioning.check(store.engine, store.where)
    else:
        revision = versioning.current_revision(store.engine)
    if revision is None:
        if not create and check_schema:
            raise StoreNotFoundError(
                f"{store.where} holds no tympan store yet: start a run with "
                "tympan.init() or run `tympan db upgrade` to create one"
            )
        if create:
            _create(store.engine, store.location)
    return _artifact_root(store.engine, store.location)


def store_revision(where: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
    """(the store's schema revision, where the store is), whatever the revision."""
    with open_store(where, check_schema=False) as store, store.translated():
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
    with open_store(where, check_schema=False) as store, store.translated():
        before, after = versioning.upgrade(store.engine)
        return before, after, store.where


def check_store(where: str | os.PathLike[str] | None = None) -> tuple[str, list[str]]:
    """(where the store is, what SQLite's integrity_check finds: [] if sound). Does not read
    the schema, so a store too damaged or too old to open can still be checked."""
    location = parse_location(where if where is not None else settings.get("TYMPAN_STORE"))
    from tympan.store.engine import make_engine

    integrity.sqlite_only(location.dialect, "tympan db check")
    _sqlite_file_exists(location, create=False)
    engine = make_engine(location, settings.get("TYMPAN_BUSY_TIMEOUT"))
    try:
        with translated(location.describe(), location.sqlite_path, "integrity_check"):
            return location.describe(), integrity.problems(engine, full=True)
    finally:
        engine.dispose()


def _sqlite_file_exists(location: StoreLocation, create: bool) -> bool:
    """Whether the database file is there (refusing one that cannot be a store); a missing
    one is an error unless it is to be created."""
    path = location.sqlite_path
    assert path is not None
    if path.exists():
        integrity.check_file(path)
        return True
    if not create:
        hint = "" if location.text != ".tympan" else " in this directory"
        raise StoreNotFoundError(
            f"no tympan store at {redact(location.text)}{hint}: pass --store or set TYMPAN_STORE"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return False


def _create_sqlite_file(location: StoreLocation) -> None:
    """Build a new SQLite store beside its path and rename it into place, so that a store
    file is never seen half made, and an empty file can only mean a truncated store."""
    path = location.sqlite_path
    assert path is not None
    with _file_lock(path):
        if path.exists():
            return  # another process created it while we waited
        new = path.with_name(f".{path.name}.new-{os.getpid()}")
        for leftover in (new, *(Path(f"{new}{s}") for s in _SIDE_FILES)):
            leftover.unlink(missing_ok=True)  # from a creation that crashed half way
        from tympan.store.engine import checkpoint, make_engine

        engine = make_engine(replace(location, db_url=f"sqlite:///{new}", sqlite_path=new),
                             settings.get("TYMPAN_BUSY_TIMEOUT"))
        try:
            with translated(str(path)):
                _initialize(engine, location)
                checkpoint(engine)  # everything into the main file
        finally:
            engine.dispose()
        os.replace(new, path)
        for side in _SIDE_FILES:
            Path(f"{new}{side}").unlink(missing_ok=True)


_SIDE_FILES = ("-wal", "-shm", "-journal")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path.with_name(path.name + ".create-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def _creation_lock(engine: Engine, location: StoreLocation) -> Iterator[None]:
    """Serialise store creation across processes that all find it missing at once."""
    if location.sqlite_path is not None:
        with _file_lock(location.sqlite_path):
            yield
        return
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(7270001)"))
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(7270001)"))
            conn.commit()


def _create(engine: Engine, location: StoreLocation) -> None:
    """Give an empty database tympan's schema (PostgreSQL, or a schema-less SQLite file)."""
    with _creation_lock(engine, location):
        if versioning.current_revision(engine) is not None:
            return  # another process created it while we waited
        _initialize(engine, location)


def _initialize(engine: Engine, location: StoreLocation) -> None:
    from tympan.store.engine import prepare_new_sqlite
    from tympan.store.schema import meta

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


def _artifact_root_query() -> Any:
    from sqlalchemy import select

    from tympan.store.schema import meta

    return select(meta.c.value).where(meta.c.key == "artifact_root")


def _artifact_root(engine: Engine, location: StoreLocation) -> str:
    from sqlalchemy import inspect

    with engine.connect() as conn:
        if not inspect(conn).has_table("meta"):  # an empty database opened unchecked
            return location.default_artifacts
        return _root(statements.scalar(conn, _artifact_root_query), location)


def _root(root: str | None, location: StoreLocation) -> str:
    """The artifact root stored in ``meta`` (or the location's default), made absolute."""
    if root is None:
        root = location.default_artifacts
    if "://" in root or os.path.isabs(root) or location.sqlite_path is None:
        return root
    return str(location.sqlite_path.parent / root)
