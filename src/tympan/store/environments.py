"""Environment snapshots, stored once per distinct content (many runs share one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tympan.store import statements
from tympan.store.location import redact

if TYPE_CHECKING:
    from sqlalchemy import Connection


def intern(conn: Connection, digest: str, data: dict[str, Any], now: float) -> int:
    from sqlalchemy import select

    from tympan.store.schema import environments
    from tympan.store.upsert import insert_for

    conn.execute(
        insert_for(conn, environments)
        .values(digest=digest, data=data, created_at=now)
        .on_conflict_do_nothing()
    )
    return conn.execute(
        select(environments.c.id).where(environments.c.digest == digest)
    ).scalar_one()


def get(conn: Connection, env_id: int | None) -> dict[str, Any] | None:
    if env_id is None:
        return None
    return _redacted(statements.scalar(conn, _data, env_id=env_id))


def _data() -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import environments

    return select(environments.c.data).where(environments.c.id == bindparam("env_id"))


def _redacted(value: Any) -> Any:
    """URL credentials masked in every string: snapshots recorded by an older tympan, or sent
    by an older client, may hold an argv or a remote URL with a password."""
    if isinstance(value, str):
        return redact(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
