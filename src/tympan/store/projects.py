"""Projects: a name that groups runs."""

from __future__ import annotations

from sqlalchemy import Connection, select

from tympan.store.schema import projects
from tympan.store.upsert import insert_for


def ensure(conn: Connection, name: str, now: float) -> int:
    """The project's id, creating it if needed (safe when many processes race to create it)."""
    conn.execute(
        insert_for(conn, projects).values(name=name, created_at=now).on_conflict_do_nothing()
    )
    return conn.execute(select(projects.c.id).where(projects.c.name == name)).scalar_one()


def find(conn: Connection, name: str) -> int | None:
    return conn.execute(select(projects.c.id).where(projects.c.name == name)).scalar()


def names(conn: Connection) -> dict[int, str]:
    return dict(conn.execute(select(projects.c.id, projects.c.name)).all())
