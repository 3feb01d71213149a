"""SQLAlchemy engines tuned per backend.

SQLite: WAL journal (readers never block the writer), a busy timeout so concurrent processes
wait for each other instead of failing, and ``BEGIN IMMEDIATE`` for write transactions: a
deferred transaction that reads and then writes can fail at once with SQLITE_BUSY when
another process committed in between, without the busy timeout ever being used.

The WAL is checkpointed every ``WAL_BYTES`` and cut back to that size after each reset.
SQLite's default (1000 pages) is 64 MiB with our 64 KiB pages: a WAL that large, still
holding points the database file has not taken in, needs as much again free on disk for the
checkpoint, and a nearly full disk then refuses every write for good, even after space is
made that would hold the data once (it hung the full-disk test).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

from tympan.store.location import StoreLocation
from tympan.store.sqlite_reader import MMAP_BYTES, WAL_BYTES, configure

__all__ = ["MMAP_BYTES", "WAL_BYTES", "WRITE", "checkpoint", "make_engine", "prepare_new_sqlite"]

WRITE = {"tympan_write": True}  # execution option that makes a transaction BEGIN IMMEDIATE

_pooled: weakref.WeakSet[Engine] = weakref.WeakSet()
_fork_hook = threading.Lock()
_fork_hook_installed = False


def make_engine(location: StoreLocation, busy_timeout: float) -> Engine:
    if location.dialect == "sqlite":
        return _sqlite_engine(location, busy_timeout)
    engine = create_engine(
        location.db_url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=4,
        connect_args={"connect_timeout": 10},
    )
    _dispose_after_fork(engine)
    return engine


def _dispose_after_fork(engine: Engine) -> None:
    """A forked child must never use the parent's pooled connections: two processes talking
    over one socket corrupt each other's transactions. SQLAlchemy's recipe for this is
    ``dispose(close=False)`` in the child: a fresh pool, the parent's connections untouched
    (psycopg does not close a connection it finds after a fork when it is collected)."""
    global _fork_hook_installed
    _pooled.add(engine)
    with _fork_hook:
        if not _fork_hook_installed:
            os.register_at_fork(after_in_child=_new_pools_in_child)
            _fork_hook_installed = True


def _new_pools_in_child() -> None:
    for engine in list(_pooled):
        engine.dispose(close=False)


def _sqlite_engine(location: StoreLocation, busy_timeout: float) -> Engine:
    # NullPool: a fresh connection per use is cheap for SQLite and means a forked child or
    # a second thread never reuses a connection opened elsewhere.
    engine = create_engine(
        location.db_url, poolclass=NullPool, connect_args={"timeout": busy_timeout}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        configure(dbapi_conn, busy_timeout)  # as SqliteReader's connections

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("tympan_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def prepare_new_sqlite(engine: Engine) -> None:
    """Page size and WAL mode for a new SQLite file; both are stored in the file itself.

    64 KiB pages: metric chunks are blobs of up to 8 MiB, which SQLite stores as a linked
    list of overflow pages; 16x fewer pages makes a 1M-point read about twice as fast.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA page_size = 65536")  # only takes effect before the first table
        raw.execute("PRAGMA journal_mode = WAL")


def checkpoint(engine: Engine) -> None:
    """Copy a SQLite store's WAL into its database file and truncate the WAL to 0 bytes."""
    with engine.connect() as conn:
        conn.connection.dbapi_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
