"""Environment snapshots, stored once per distinct content (many runs share one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from tympan.store.location import redact
from tympan.store.schema import environments
from tympan.store.upsert import insert_for


def intern(conn: Connection, digest: str, data: dict[str, Any], now: float) -> int:
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
    data = conn.execute(select(environments.c.data).where(environments.c.id == env_id)).scalar()
    return _redacted(data)


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
