"""Model aliases: which version each alias names now, and the append-only history of changes.

``model_aliases`` is the present (one row per alias, for fast resolution); ``alias_events``
is the past, written in the same transaction as every change and never updated (a trigger
refuses it). Replaying the events up to a time gives the alias's holder at that time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, select

from tympan.store.schema import alias_events, model_aliases, model_versions
from tympan.store.upsert import insert_for


def current(conn: Connection, model_id: int) -> dict[str, int]:
    """alias -> version number, for every alias of the model."""
    stmt = (select(model_aliases.c.alias, model_versions.c.version)
            .join(model_versions, model_versions.c.id == model_aliases.c.version_id)
            .where(model_aliases.c.model_id == model_id).order_by(model_aliases.c.alias))
    return dict(conn.execute(stmt).all())


def holder(conn: Connection, model_id: int, alias: str) -> int | None:
    """The version number the alias names now, None if it is not set."""
    return current(conn, model_id).get(alias)


def put(conn: Connection, model_id: int, alias: str, version_id: int, now: float) -> None:
    stmt = insert_for(conn, model_aliases).values(model_id=model_id, alias=alias,
                                                  version_id=version_id, updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["model_id", "alias"],
                                            set_={"version_id": version_id, "updated_at": now}))


def remove(conn: Connection, model_id: int, alias: str) -> None:
    conn.execute(delete(model_aliases).where(model_aliases.c.model_id == model_id,
                                             model_aliases.c.alias == alias))


def record_event(conn: Connection, **fields: Any) -> int:
    result = conn.execute(alias_events.insert().values(**fields))
    return int(result.inserted_primary_key[0])


def events(conn: Connection, model_id: int, alias: str | None = None,
           until: float | None = None) -> list[Row]:
    """The model's alias events (of one alias, up to a time), oldest first."""
    stmt = select(alias_events).where(alias_events.c.model_id == model_id)
    if alias is not None:
        stmt = stmt.where(alias_events.c.alias == alias)
    if until is not None:
        stmt = stmt.where(alias_events.c.at <= until)
    return list(conn.execute(stmt.order_by(alias_events.c.at, alias_events.c.id)))
