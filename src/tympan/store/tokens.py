"""API tokens: minted once, kept only as a hash, checked in constant time, revocable.

A token reads ``tympan_<id>_<secret>``: the id is public (``tympan token list`` shows it, the
server looks the record up by it), the secret is 256 random bits of which only the SHA-256 is
stored. A high-entropy secret needs no slow password hash: nobody can guess it, and a stolen
database does not give it back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from tympan.errors import InvalidInputError, NotFoundError
from tympan.store.schema import TOKEN_SCOPES, tokens

PREFIX = "tympan_"
TOUCH_EVERY = 60.0  # seconds: last_used_at is written at most this often per token
_RANK = {scope: rank for rank, scope in enumerate(TOKEN_SCOPES)}


@dataclass(frozen=True)
class Token:
    """A token's record, without its secret."""

    id: str
    scope: str
    project: str | None
    name: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def grants(self, scope: str) -> bool:
        """admin ⊃ write ⊃ read."""
        return _RANK[self.scope] >= _RANK[scope]


def scope_allows(held: str, needed: str) -> bool:
    return _RANK[held] >= _RANK[needed]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(row) -> Token:
    return Token(row.id, row.scope, row.project, row.name, row.created_at, row.last_used_at,
                 row.revoked_at)


def create(conn: Connection, scope: str, project: str | None = None, name: str = "",
           now: float | None = None) -> tuple[str, Token]:
    """Mint a token; returns (the token text, shown only this once; its record)."""
    if scope not in TOKEN_SCOPES:
        raise InvalidInputError(f"unknown token scope {scope!r}: use one of "
                                f"{', '.join(TOKEN_SCOPES)}")
    if project is not None and not project.strip():
        raise InvalidInputError("the token's project name is empty: omit --project for a "
                                "token that sees every project")
    if len(name) > 200 or (project is not None and len(project) > 200):
        raise InvalidInputError("token names and project names are at most 200 characters")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    stamp = time.time() if now is None else now
    conn.execute(tokens.insert().values(
        id=token_id, secret_hash=_hash(secret), scope=scope, project=project, name=name,
        created_at=stamp, last_used_at=None, revoked_at=None))
    return f"{PREFIX}{token_id}_{secret}", Token(token_id, scope, project, name, stamp, None,
                                                  None)


def all_tokens(conn: Connection) -> list[Token]:
    rows = conn.execute(select(tokens).order_by(tokens.c.created_at, tokens.c.id))
    return [_record(row) for row in rows]


def get(conn: Connection, token_id: str) -> Token | None:
    row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
    return None if row is None else _record(row)


def revoke(conn: Connection, token_id: str, now: float | None = None) -> Token:
    """Revoke a token by id (revoking it again changes nothing)."""
    found = get(conn, token_id)
    if found is None:
        raise NotFoundError(f"no token with id {token_id!r}: `tympan token list` shows the ids")
    if found.revoked_at is None:
        stamp = time.time() if now is None else now
        conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=stamp))
        found = get(conn, token_id)
        assert found is not None
    return found


def split(text: str) -> tuple[str, str] | None:
    """(id, secret) of a token's text, or None when it is not shaped like one."""
    if not text.startswith(PREFIX) or len(text) > 200:
        return None
    token_id, sep, secret = text[len(PREFIX):].partition("_")
    if not sep or not token_id or not secret:
        return None
    return token_id, secret


def verify(conn: Connection, text: str) -> Token | None:
    """The record of the token ``text`` (revoked or not), or None if it is no valid token."""
    parts = split(text)
    if parts is None:
        return None
    token_id, secret = parts
    row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
    if row is None:
        _hash(secret)  # same work whether or not the id exists
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(secret)):
        return None
    return _record(row)


def touch(conn: Connection, token: Token, now: float) -> None:
    """Record that ``token`` was used, at most once per TOUCH_EVERY seconds."""
    if token.last_used_at is not None and now - token.last_used_at < TOUCH_EVERY:
        return
    conn.execute(update(tokens).where(tokens.c.id == token.id).values(last_used_at=now))
