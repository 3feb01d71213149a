"""Audio samples: a FLAC artifact plus what a player needs to know about it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from tympan.store.schema import artifacts, audio_samples


def record(conn: Connection, **fields: Any) -> None:
    conn.execute(audio_samples.insert().values(**fields))


def for_run(conn: Connection, run_id: str) -> list[Row]:
    stmt = (
        select(audio_samples, artifacts.c.path, artifacts.c.sha256)
        .join(artifacts, artifacts.c.id == audio_samples.c.artifact_id)
        .where(audio_samples.c.run_id == run_id)
        .order_by(audio_samples.c.key, audio_samples.c.step, audio_samples.c.id)
    )
    return list(conn.execute(stmt))
