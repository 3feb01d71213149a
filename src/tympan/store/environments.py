"""Environment snapshots, stored once per distinct content (many runs share one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

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
    return conn.execute(select(environments.c.data).where(environments.c.id == env_id)).scalar()
