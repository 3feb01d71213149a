"""Turn database driver errors into tympan's StoreError tree, with the store named.

Errors are classified by their PEP 249 class names, so raw driver errors (the PostgreSQL
fast paths use psycopg directly) are treated like SQLAlchemy's wrapped ones, without
importing any driver here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tympan.errors import StoreCorruptError, StoreUnavailableError
from tympan.store.integrity import damaged
from tympan.store.location import redact

_CORRUPT_HINTS = ("file is not a database", "malformed", "not a database", "disk image")
# The caller's or our own mistake: retrying cannot help, and it is not the store's fault.
_NOT_THE_STORE = {"IntegrityError", "ProgrammingError", "DataError", "NotSupportedError"}


def _store_failure(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "DatabaseError" not in names and "InterfaceError" not in names:
        return False
    return not names & _NOT_THE_STORE


@contextmanager
def translated(where: str, sqlite_path: Path | None = None,
               check: str | None = None) -> Iterator[None]:
    """Re-raise connection/IO/corruption errors as StoreError subclasses naming ``where``; a
    SQLite store (``sqlite_path``) that reads as damaged is named so, with how to recover it,
    whichever query met the damage first (opening reads a few tables before quick_check), or
    the ``check`` that was running."""
    try:
        yield
    except Exception as e:
        if not _store_failure(e):
            raise
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()
        reason_text = redact(reason[0]) if reason else type(e).__name__
        if any(hint in reason_text.lower() for hint in _CORRUPT_HINTS):
            if sqlite_path is not None:
                raise StoreCorruptError(damaged(sqlite_path, [reason_text], check)) from None
            raise StoreCorruptError(
                f"the store at {where} is not a readable tympan store ({reason_text})"
            ) from None
        raise StoreUnavailableError(f"cannot use the store at {where}: {reason_text}") from None
