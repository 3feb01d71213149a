"""Audio samples: a FLAC artifact plus what a player needs to know about it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tympan.store import statements

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row


def record(conn: Connection, **fields: Any) -> None:
    from tympan.store.schema import audio_samples

    conn.execute(audio_samples.insert().values(**fields))


def exists(conn: Connection, **fields: Any) -> bool:
    """Is a clip with exactly these field values recorded already?"""
    from sqlalchemy import select

    from tympan.store.schema import audio_samples

    stmt = select(audio_samples.c.id).where(
        *(audio_samples.c[name] == value for name, value in fields.items())
    )
    return conn.execute(stmt.limit(1)).first() is not None


def for_run(conn: Connection, run_id: str) -> list[Row]:
    return statements.rows(conn, _of_run, run_id=run_id)


def _of_run() -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import artifacts, audio_samples

    return (
        select(audio_samples, artifacts.c.path, artifacts.c.sha256)
        .join(artifacts, artifacts.c.id == audio_samples.c.artifact_id)
        .where(audio_samples.c.run_id == bindparam("run_id"))
        .order_by(audio_samples.c.key, audio_samples.c.step, audio_samples.c.id)
    )


def get(conn: Connection, run_id: str, sample_id: int) -> Row | None:
    """One sample of a run by its id, with its artifact's path and sha256."""
    from sqlalchemy import select

    from tympan.store.schema import artifacts, audio_samples

    stmt = (
        select(audio_samples, artifacts.c.path, artifacts.c.sha256)
        .join(artifacts, artifacts.c.id == audio_samples.c.artifact_id)
        .where(audio_samples.c.run_id == run_id, audio_samples.c.id == sample_id)
    )
    return conn.execute(stmt).first()
