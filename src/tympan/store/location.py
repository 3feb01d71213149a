"""Where a store lives: parse what the user typed into a database URL and an artifact root."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

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
        return redact(self.db_url)


# Every URL that reaches a message, a log line or an API answer goes through ``redact``.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|sig|credential|auth", re.IGNORECASE)
MASK = "***"


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it masked.

    A password in the userinfo becomes ``***`` (``postgresql://me:***@db/x``); an http(s)
    URL loses its whole userinfo (``https://***@host``: a lone user name there is often a
    token); query parameters named like a secret (password, token, key, signature,
    credential, ... percent-encoded or not) keep their name and lose their value. It errs
    on the side of hiding: a URL it cannot read is masked from its scheme to its last ``@``.
    """
    return _URL.sub(lambda match: _redact_url(match.group(0)), text)


def _redact_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    for at in reversed([i for i, c in enumerate(rest) if c == "@"]):
        userinfo = rest[:at]
        first = min((userinfo.find(c) for c in ":/?#" if c in userinfo), default=-1)
        if first == -1 or userinfo[first] == ":":  # "user" or "user:anything": userinfo
            if scheme.lower() in {"http", "https"}:
                masked = MASK
            else:
                user, colon, _ = userinfo.partition(":")
                masked = f"{user}:{MASK}" if colon else user
            rest = f"{masked}@{rest[at + 1:]}"
            break
    head, question, query = rest.partition("?")
    if not question:
        return f"{scheme}://{rest}"
    query, hash_, fragment = query.partition("#")
    return f"{scheme}://{head}?{redact_query(query)}{hash_}{fragment}"


def redact_query(query: str) -> str:
    """A query string with the values of secret-named parameters masked (``token=***``)."""
    params = []
    for param in re.split(r"([&;])", query):
        name, equals, _ = param.partition("=")
        if equals and _SECRET_PARAM.search(unquote(name)):
            param = f"{name}={MASK}"
        params.append(param)
    return "".join(params)


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
                raise StoreURLError(f"store URL {redact(raw)!r} names no database host")
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
        raise StoreURLError(f"unsupported store URL {redact(raw)!r}: use {_SUPPORTED}")
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


def is_remote(where: str) -> bool:
    """Does a store location name a tympan server rather than a store?"""
    return where.strip().lower().startswith(("http://", "https://"))
