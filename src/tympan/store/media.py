"""Images and tables: a PNG or JSON artifact under a key and step, plus what a viewer needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tympan.store import statements

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row


def record(conn: Connection, *, run_id: str, kind: str, key: str, step: int, artifact_id: int,
           caption: str | None, info: dict[str, Any], created_at: float) -> None:
    """Attach an item; the same (kind, key, step, file) again records nothing new."""
    from sqlalchemy import select

    from tympan.store.schema import media

    same = select(media.c.id).where(
        media.c.run_id == run_id, media.c.kind == kind, media.c.key == key,
        media.c.step == step, media.c.artifact_id == artifact_id,
    )
    if conn.execute(same.limit(1)).first() is not None:
        return
    conn.execute(media.insert().values(
        run_id=run_id, kind=kind, key=key, step=step, artifact_id=artifact_id,
        caption=caption, info=info, created_at=created_at,
    ))


def _with_file() -> Any:
    from sqlalchemy import select

    from tympan.store.schema import artifacts, media

    return (select(media, artifacts.c.path, artifacts.c.sha256, artifacts.c.size,
                   artifacts.c.media_type)
            .join(artifacts, artifacts.c.id == media.c.artifact_id))


def for_run(conn: Connection, run_id: str, kind: str | None = None) -> list[Row]:
    """The run's items (of one kind), by kind, key, step and logging order."""
    return statements.rows(conn, _of_run, kind is not None, run_id=run_id,
                           **({} if kind is None else {"kind": kind}))


def _of_run(of_kind: bool) -> Any:
    from sqlalchemy import bindparam

    from tympan.store.schema import media

    stmt = _with_file().where(media.c.run_id == bindparam("run_id"))
    if of_kind:
        stmt = stmt.where(media.c.kind == bindparam("kind"))
    return stmt.order_by(media.c.kind, media.c.key, media.c.step, media.c.id)


def get(conn: Connection, run_id: str, item_id: int) -> Row | None:
    """One item of a run by its id, with its file's path, sha256, size and media type."""
    from tympan.store.schema import media

    stmt = _with_file().where(media.c.run_id == run_id, media.c.id == item_id)
    return conn.execute(stmt).first()


def index(conn: Connection, run_ids: Sequence[str], kind: str) -> list[Row]:
    """(run_id, key, step, id) of every item of one kind of these runs, by key and step."""
    from sqlalchemy import select

    from tympan.store.schema import media

    if not run_ids:
        return []
    stmt = (select(media.c.run_id, media.c.key, media.c.step, media.c.id)
            .where(media.c.run_id.in_(run_ids), media.c.kind == kind)
            .order_by(media.c.key, media.c.step, media.c.id))
    return list(conn.execute(stmt))
