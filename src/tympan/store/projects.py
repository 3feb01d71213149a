"""Projects: a name that groups runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tympan.store import statements

if TYPE_CHECKING:
    from sqlalchemy import Connection


def ensure(conn: Connection, name: str, now: float) -> int:
    """The project's id, creating it if needed (safe when many processes race to create it)."""
    from sqlalchemy import select

    from tympan.store.schema import projects
    from tympan.store.upsert import insert_for

    conn.execute(
        insert_for(conn, projects).values(name=name, created_at=now).on_conflict_do_nothing()
    )
    return conn.execute(select(projects.c.id).where(projects.c.name == name)).scalar_one()


def find(conn: Connection, name: str) -> int | None:
    return statements.scalar(conn, _named, name=name)


def _named() -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import projects

    return select(projects.c.id).where(projects.c.name == bindparam("name"))


def names(conn: Connection) -> dict[int, str]:
    return dict(statements.rows(conn, _names))


def _names() -> Any:
    from sqlalchemy import select

    from tympan.store.schema import projects

    return select(projects.c.id, projects.c.name)
