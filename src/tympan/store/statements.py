"""Store reads that run without importing SQLAlchemy on a SQLite store.

A read is a Core builder (a function of plain, hashable *shape* arguments that returns a
SQLAlchemy statement, its varying values as named ``bindparam``\\ s) plus the values of those
parameters. On a SQLAlchemy connection (PostgreSQL, writes, the server) :func:`rows` executes
the built statement as usual. On a :class:`~tympan.store.sqlite_reader.SqliteReader` it runs
the SQL that SQLAlchemy compiled from the same builder through ``sqlite3``: compiled once per
(builder, shape), kept in memory and in a JSON file under TYMPAN_SQL_CACHE, so a later
process reads the store without importing SQLAlchemy (half the start-up of ``tympan runs``).
There is one query, written once with Core; this module only remembers its SQL text.

The file's name carries a fingerprint of everything the SQL text depends on: the source
files of ``tympan.store`` (where every builder and the schema live; a builder elsewhere is
refused), SQLAlchemy's install and the SQLite library's version. A changed builder, schema or
SQLAlchemy makes a new file, never a stale hit. A statement whose values SQLAlchemy would
convert (any type with a bind or result processor other than JSON's ``json.loads``) is
marked as such and always runs through SQLAlchemy, as does an empty ``IN`` list.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tympan.store.sqlite_reader import SqliteReader

__all__ = ["Compiled", "cache_file", "compiled", "dialect", "fingerprint", "first", "rows",
           "scalar", "scalars"]

KEPT = 2000  # statements per cache file (the oldest half goes when it is full) and in memory
FILES_KEPT = 8  # cache files (fingerprints) kept in the folder, the newest


@dataclass(frozen=True)
class Compiled:
    """A statement's SQLite SQL (``:name`` parameters; ``__[POSTCOMPILE_name]`` for IN
    lists), the values compiled into it, and its result columns."""

    sql: str
    constants: dict[str, Any]
    lists: tuple[str, ...]  # parameters that are IN lists
    columns: tuple[str, ...]
    json_columns: tuple[int, ...]
    fit: bool = True  # False: SQLAlchemy converts some value; run it through SQLAlchemy


Builder = Callable[..., Any]


def rows(conn: Any, build: Builder, *shape: Any, **params: Any) -> list[Any]:
    """The rows of ``build(*shape)`` with ``params`` bound, on either kind of connection;
    each row is a tuple with its columns as attributes (SQLAlchemy's Row, or alike)."""
    if isinstance(conn, SqliteReader):
        entry = compiled(build, shape)
        if entry.fit and all(params.get(name, entry.constants.get(name)) for name in entry.lists):
            return conn.fetch(_sql(entry, params), _binds(entry, params), entry.columns,
                              entry.json_columns)
        conn = conn.sqlalchemy()
    return list(conn.execute(built(build, shape), params).all())


def first(conn: Any, build: Builder, *shape: Any, **params: Any) -> Any | None:
    found = rows(conn, build, *shape, **params)
    return found[0] if found else None


def scalars(conn: Any, build: Builder, *shape: Any, **params: Any) -> list[Any]:
    return [row[0] for row in rows(conn, build, *shape, **params)]


def scalar(conn: Any, build: Builder, *shape: Any, **params: Any) -> Any | None:
    row = first(conn, build, *shape, **params)
    return None if row is None else row[0]


def dialect(conn: Any) -> str:
    """The database a connection speaks (sqlite, postgresql), without SQLAlchemy for a
    SqliteReader."""
    if isinstance(conn, SqliteReader):
        return conn.dialect_name
    return conn.dialect.name


_built: dict[tuple, Any] = {}


def built(build: Builder, shape: tuple) -> Any:
    """``build(*shape)``, made once per process (Core statements are immutable)."""
    key = (build, shape)
    stmt = _built.get(key)
    if stmt is None:
        if len(_built) >= KEPT:  # a filter's values are part of its shape: no end of them
            _built.clear()
        stmt = _built[key] = build(*shape)
    return stmt


_memory: dict[str, Compiled] = {}
_loaded: dict[str, dict[str, Any]] = {}  # cache file -> its entries, read once
_lock = threading.Lock()


def compiled(build: Builder, shape: tuple) -> Compiled:
    """The SQLite SQL of ``build(*shape)``: from memory, the cache file, or SQLAlchemy."""
    key = _key(build, shape)
    entry = _memory.get(key)
    if entry is not None:
        return entry
    path = cache_file()
    with _lock:
        stored = _stored(path).get(key)
    if stored is not None:
        entry = Compiled(stored["sql"], stored["constants"], tuple(stored["lists"]),
                         tuple(stored["columns"]), tuple(stored["json_columns"]),
                         stored["fit"])
    else:
        entry = _compile(built(build, shape))
        _save(path, key, entry)
    if len(_memory) >= KEPT:
        _memory.clear()
    _memory[key] = entry
    return entry


def _key(build: Builder, shape: tuple) -> str:
    if build.__module__ != "tympan.store" and not build.__module__.startswith("tympan.store."):
        # the cache file's fingerprint covers tympan.store's sources only
        raise ValueError(f"{build.__module__}.{build.__qualname__}: statement builders live "
                         "in tympan.store")
    return f"{build.__module__}.{build.__qualname__}{shape!r}"


def _sql(entry: Compiled, params: dict[str, Any]) -> str:
    sql = entry.sql
    for name in entry.lists:
        values = params[name] if name in params else entry.constants[name]
        marks = ", ".join(f":{name}__{i}" for i in range(len(values)))
        sql = sql.replace(f"__[POSTCOMPILE_{name}]", marks)
    return sql


def _binds(entry: Compiled, params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(entry.constants)
    if unknown:
        raise ValueError(f"no parameter {', '.join(sorted(unknown))} in {entry.sql!r}")
    binds = {**entry.constants, **params}
    for name in entry.lists:
        binds.update((f"{name}__{i}", v) for i, v in enumerate(binds.pop(name)))
    return binds


def _compile(stmt: Any) -> Compiled:
    """SQLAlchemy's SQLite compilation of ``stmt``, with what running it without SQLAlchemy
    needs to know (imports SQLAlchemy)."""
    from sqlalchemy import JSON
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    dialect = SQLiteDialect_pysqlite(paramstyle="named")
    done = stmt.compile(dialect=dialect)
    fit = True
    constants: dict[str, Any] = {}
    lists: list[str] = []
    for bind, name in done.bind_names.items():
        convert = bind.type._cached_bind_processor(dialect)
        if bind.callable is not None or bind.literal_execute or (convert and bind.required):
            fit = False  # a value given at execution would need SQLAlchemy's conversion
        if bind.expanding:
            lists.append(name)
        value = bind.value
        if convert is not None and not bind.required:  # a value known now: converted now
            value = [convert(v) for v in value] if bind.expanding else convert(value)
        constants[name] = list(value) if isinstance(value, tuple | list) else value
    columns, json_columns = [], []
    for i, column in enumerate(done._result_columns):
        columns.append(column.keyname)
        if column.type._cached_result_processor(dialect, None) is not None:
            if isinstance(column.type, JSON):
                json_columns.append(i)
            else:
                fit = False
    if len(set(columns)) != len(columns):
        fit = False  # SQLAlchemy's rows tell same-named columns apart; ours could not
    return Compiled(done.string, constants, tuple(lists), tuple(columns), tuple(json_columns),
                    fit)


def cache_file() -> Path:
    """The cache file for this tympan, SQLAlchemy and SQLite (see the module docstring)."""
    global _fingerprint
    if _fingerprint is None:
        sources = sorted(Path(__file__).parent.glob("*.py"))
        spec = find_spec("sqlalchemy")
        if spec is not None and spec.origin:
            sources.append(Path(spec.origin))  # its version is in there
        _fingerprint = fingerprint(sources)
    from tympan import settings

    folder = Path(settings.get("TYMPAN_SQL_CACHE")).expanduser()
    return folder / f"statements-{_fingerprint}.json"


def fingerprint(sources: list[Path]) -> str:
    """What the compiled SQL depends on: the SQLite library's version and each source file
    (path, modification time, size; reading them would cost more than the cache saves)."""
    parts: list[Any] = [sqlite3.sqlite_version]
    for path in sources:
        st = path.stat()
        parts.append((str(path), st.st_mtime_ns, st.st_size))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


_fingerprint: str | None = None


def _stored(path: Path) -> dict[str, Any]:
    """The entries of the cache file (read once per process; {} when absent or unreadable,
    since the cache only saves time)."""
    entries = _loaded.get(str(path))
    if entries is None:
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        _loaded[str(path)] = entries
    return entries


def _save(path: Path, key: str, entry: Compiled) -> None:
    """Add ``entry`` to the cache file: re-read, merged, written beside it and renamed in, so
    readers never see half a file; a folder that cannot be written only costs the time."""
    import tempfile  # only when something new was compiled
    fields = {"sql": entry.sql, "constants": entry.constants, "lists": list(entry.lists),
              "columns": list(entry.columns), "json_columns": list(entry.json_columns),
              "fit": entry.fit}
    try:
        text = json.dumps(fields)
    except (TypeError, ValueError):
        return  # a value JSON cannot hold (bytes): compiled again by the next process
    if json.loads(text)["constants"] != entry.constants:
        return  # a value JSON would change (a NaN, a float key): same
    with _lock:
        _loaded.pop(str(path), None)
        entries = dict(_stored(path))
        entries[key] = fields
        if len(entries) > KEPT:
            entries = dict(list(entries.items())[len(entries) - KEPT // 2:])
        _loaded[str(path)] = entries
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".statements-")
            with os.fdopen(fd, "w") as out:
                json.dump(entries, out)
            os.replace(temporary, path)
            _prune(path.parent)
        except OSError:
            pass


def _prune(folder: Path) -> None:
    """Keep the newest FILES_KEPT cache files (each fingerprint makes a new one)."""
    files = sorted(folder.glob("statements-*.json"), key=lambda p: p.stat().st_mtime,
                   reverse=True)
    for old in files[FILES_KEPT:]:
        old.unlink(missing_ok=True)
