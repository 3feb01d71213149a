"""Where a store lives: parse what the user typed into a database URL and an artifact root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tympan.errors import StoreURLError

SQLITE_FILENAME = "tympan.db"
_SUPPORTED = "a directory path, sqlite:///FILE.db or postgresql+psycopg://USER@HOST:PORT/DB"


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store location.

    ``db_url`` is what SQLAlchemy connects to; ``default_artifacts`` is where blobs go when a
    new store is created without TYMPAN_ARTIFACTS (existing stores record their own root).
    """

    text: str  # what the user gave, for messages
    db_url: str
    dialect: str  # "sqlite" or "postgresql"
    sqlite_path: Path | None
    default_artifacts: str

    def describe(self) -> str:
        if self.sqlite_path is not None:
            return str(self.sqlite_path)
        return _redact(self.db_url)


def _redact(url: str) -> str:
    """Hide a password in a URL so it never reaches a message or a log."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def parse_location(text: str | os.PathLike[str]) -> StoreLocation:
    """Turn a store argument or TYMPAN_STORE value into a StoreLocation."""
    raw = os.fspath(text).strip()
    if not raw:
        raise StoreURLError(f"empty store location: use {_SUPPORTED}")
    if "://" in raw:
        scheme = raw.split("://", 1)[0].lower()
        if scheme in {"postgresql", "postgres", "postgresql+psycopg"}:
            rest = raw.split("://", 1)[1]
            if not rest or (rest.startswith("/") and len(rest) == 1):
                raise StoreURLError(f"store URL {_redact(raw)!r} names no database host")
            url = "postgresql+psycopg://" + rest
            return StoreLocation(raw, url, "postgresql", None, str(Path(".tympan") / "blobs"))
        if scheme == "sqlite":
            path_part = raw.split("://", 1)[1]
            if not path_part.startswith("/") or path_part in {"/", "/:memory:"}:
                raise StoreURLError(
                    f"store URL {raw!r} names no database file: use sqlite:///relative.db "
                    "or sqlite:////absolute/path.db"
                )
            return _sqlite_file(raw, Path(path_part[1:]))
        raise StoreURLError(f"unsupported store URL {_redact(raw)!r}: use {_SUPPORTED}")
    path = Path(raw).expanduser()
    if path.suffix in {".db", ".sqlite", ".sqlite3"} or path.is_file():
        return _sqlite_file(raw, path)
    return _sqlite_file(raw, path / SQLITE_FILENAME, artifacts="blobs")


def _sqlite_file(text: str, file: Path, artifacts: str | None = None) -> StoreLocation:
    file = file.absolute()
    # Relative artifact roots are resolved against the database file's folder, so a
    # directory store can be moved or copied as one piece.
    root = artifacts if artifacts is not None else f"{file.stem}.blobs"
    return StoreLocation(text, f"sqlite:///{file}", "sqlite", file, root)
