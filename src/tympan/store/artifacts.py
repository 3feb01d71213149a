"""Artifacts: a run's files by logical path, pointing at content-addressed blobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tympan.store import statements

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row


def record(
    conn: Connection, run_id: str, path: str, sha256: str, size: int, media_type: str, now: float
) -> int:
    """Attach a blob to a run under ``path``; logging the same path again replaces it."""
    from sqlalchemy import select

    from tympan.store.schema import artifacts, blobs
    from tympan.store.upsert import insert_for

    conn.execute(
        insert_for(conn, blobs).values(sha256=sha256, size=size, created_at=now)
        .on_conflict_do_nothing()
    )
    stmt = insert_for(conn, artifacts).values(
        run_id=run_id, path=path, sha256=sha256, size=size, media_type=media_type, created_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "path"],
        set_={"sha256": sha256, "size": size, "media_type": media_type, "created_at": now},
    )
    conn.execute(stmt)
    return conn.execute(
        select(artifacts.c.id).where(artifacts.c.run_id == run_id, artifacts.c.path == path)
    ).scalar_one()


def for_run(conn: Connection, run_id: str) -> list[Row]:
    return statements.rows(conn, _of_run, run_id=run_id)


def _of_run() -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import artifacts

    return select(artifacts).where(artifacts.c.run_id == bindparam("run_id")).order_by(
        artifacts.c.path)


def get(conn: Connection, run_id: str, path: str) -> Row | None:
    from sqlalchemy import select

    from tympan.store.schema import artifacts

    stmt = select(artifacts).where(artifacts.c.run_id == run_id, artifacts.c.path == path)
    return conn.execute(stmt).first()



def size_of_blob(conn: Connection, run_id: str, sha256: str) -> int | None:
    """The size of the blob ``sha256`` if one of the run's files (an artifact, or the file of a
    clip, image or table, all filed among its artifacts) holds it; else None."""
    from sqlalchemy import select

    from tympan.store.schema import artifacts

    stmt = select(artifacts.c.size).where(artifacts.c.run_id == run_id,
                                          artifacts.c.sha256 == sha256)
    return conn.execute(stmt.limit(1)).scalar()
