"""A read-only snapshot of a SQLite store through the stdlib driver, without SQLAlchemy.

Importing SQLAlchemy is about half of what a short command such as ``tympan runs`` costs.
:class:`SqliteReader` runs the statements that ``tympan.store.statements`` compiled once (the
same SQL, built by the same Core builders) straight through ``sqlite3``. A store function
that still hands it a SQLAlchemy statement gets a SQLAlchemy connection over the very same
``sqlite3`` connection, made on first use, so it reads the same snapshot.

The connection is set up exactly as the engine's (``configure``, which ``engine.py`` calls
too), and reads one snapshot: ``BEGIN`` on entry, ``ROLLBACK`` on exit.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection

WAL_BYTES = 4 << 20  # checkpoint the WAL at this size, and truncate it back to it (engine.py)
# Reads map the file instead of copying pages into each connection's cache: every request
# opens a fresh connection (NullPool) whose 2 MiB cache holds 31 of our 64 KiB pages, so a
# read touching 100,000 runs in random order copied the same pages in again and again (a
# group-by of 100,000 runs: 1,047 ms of CPU without, 734 ms with; docs/benchmarks.md).
MMAP_BYTES = 1 << 30


def configure(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """What every connection to a SQLite store sets first (see engine.py's docstring)."""
    conn.isolation_level = None  # we issue BEGIN ourselves
    cur = conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL survives process crashes
    page_size = cur.execute("PRAGMA page_size").fetchone()[0]
    cur.execute(f"PRAGMA wal_autocheckpoint = {max(1, WAL_BYTES // page_size)}")
    cur.execute(f"PRAGMA journal_size_limit = {WAL_BYTES}")
    cur.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    cur.close()


class SqliteReader:
    """One read transaction on a SQLite store file (a context manager)."""

    dialect_name = "sqlite"

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self._raw = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False)
        self._sqlalchemy: Connection | None = None
        try:
            configure(self._raw, busy_timeout)
        except BaseException:
            self._raw.close()
            raise

    def __enter__(self) -> SqliteReader:
        self._raw.execute("BEGIN")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._sqlalchemy is not None:
                self._sqlalchemy.close()
            if self._raw.in_transaction:
                self._raw.execute("ROLLBACK")
        finally:
            self._raw.close()

    def fetch(self, sql: str, binds: dict[str, Any], columns: tuple[str, ...],
              json_columns: tuple[int, ...]) -> list[Any]:
        """Rows of ``sql`` as tuples with attribute access by column name, JSON columns
        parsed (as SQLAlchemy's JSON type does)."""
        found = self._raw.execute(sql, binds).fetchall()
        if json_columns:
            found = [tuple(json.loads(v) if i in json_columns and v is not None else v
                           for i, v in enumerate(row)) for row in found]
        row_type = row_class(columns)
        return [row_type(row) for row in found]

    def sqlalchemy(self) -> Connection:
        """A SQLAlchemy connection over this one (same transaction), made on first use."""
        if self._sqlalchemy is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import StaticPool

            raw = self._raw
            engine = create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool,
                                   pool_reset_on_return=None)
            self._sqlalchemy = engine.connect()
        return self._sqlalchemy

    def __getattr__(self, name: str) -> Any:
        # A store function not written with tympan.store.statements (execute, scalars...)
        return getattr(self.sqlalchemy(), name)


_ROW_CLASSES: dict[tuple[str, ...], type] = {}


def row_class(columns: tuple[str, ...]) -> type:
    """A tuple type whose items are also attributes named by ``columns`` (as SQLAlchemy's
    Row), with ``_mapping`` and ``_fields``."""
    found = _ROW_CLASSES.get(columns)
    if found is None:
        index = {name: i for i, name in enumerate(columns)}

        def __getattr__(self: tuple, name: str) -> Any:
            try:
                return self[index[name]]
            except KeyError:
                raise AttributeError(name) from None

        found = type("Row", (tuple,), {
            "__slots__": (), "__getattr__": __getattr__, "_fields": columns,
            "_mapping": property(lambda self: dict(zip(columns, self, strict=True))),
        })
        _ROW_CLASSES[columns] = found
    return found
