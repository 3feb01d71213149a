"""Is a SQLite store's file sound? Checks that name damage instead of reading past it.

An empty file is what a crash or a full disk leaves of a store that was being truncated or
copied; it is refused, never taken for a new store (a new one is built beside it and renamed
into place, so a store file is never empty). ``quick_check`` runs when a process first opens
a store to write to it: O(file size) but without the index cross-checks of
``integrity_check``, which ``tympan db check`` runs. PostgreSQL checks its own pages.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from tympan.errors import StoreCorruptError, StoreError

if TYPE_CHECKING:
    from sqlalchemy import Engine

HEADER = b"SQLite format 3\x00"
SHOWN = 3  # problems quoted in an error message


def check_file(path: Path) -> None:
    """Refuse a path that cannot be a tympan store's database file (it exists)."""
    if path.is_dir():
        raise StoreCorruptError(f"{path} is a directory, not a tympan database file")
    with open(path, "rb") as f:
        head = f.read(len(HEADER))
    if not head:
        raise StoreCorruptError(
            f"the store file {path} is empty (0 bytes): it was truncated (a crash or a full "
            "disk while it was copied or written), and its runs are not in it. Restore it from "
            "a backup; or, to start a new store there, delete the file"
        )
    if head != HEADER:
        raise StoreCorruptError(f"{path} is not a tympan store (not a SQLite database)")


def problems(engine: Engine, *, full: bool) -> list[str]:
    """What SQLite's integrity_check (``full``) or quick_check finds; [] for a sound file."""
    pragma = "integrity_check" if full else "quick_check"
    with engine.connect() as conn:
        rows = [r[0] for r in conn.exec_driver_sql(f"PRAGMA {pragma}")]
    if rows == ["ok"]:
        return []
    lines = (line.strip() for row in rows for line in row.splitlines())
    return [line for line in lines if line and not line.startswith("*** in database")]


def verify(engine: Engine, path: Path) -> None:
    """Raise StoreCorruptError naming the damage if quick_check finds any (SQLite only)."""
    found = problems(engine, full=False)
    if found:
        raise StoreCorruptError(damaged(path, found, "quick_check", "Nothing was written to it. "))


def damaged(path: Path, found: list[str], check: str | None = None, note: str = "") -> str:
    """The message for a damaged SQLite store: what ``check`` found (None: what a query
    met), and how to recover."""
    shown = "; ".join(found[:SHOWN]) + (f"; and {len(found) - SHOWN} more" if
                                         len(found) > SHOWN else "")
    quoted = shlex.quote(str(path))
    listed = "" if check == "integrity_check" else (
        f"; `tympan --store {quoted} db check` lists every problem")
    source = f"SQLite {check}" if check else "SQLite"
    return (
        f"the store at {path} is damaged ({source}: {shown}). {note}Restore it from a "
        f"backup, or salvage what is readable with `sqlite3 {quoted} .recover | sqlite3 "
        f"recovered.db`{listed}"
    )


def sqlite_only(dialect: str, what: str) -> None:
    if dialect != "sqlite":
        raise StoreError(
            f"{what} checks SQLite stores; PostgreSQL checks its own pages (see its data "
            "checksums and the amcheck extension)"
        )
