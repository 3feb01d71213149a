"""Preference judgements of blind listening tests (see study/listening.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, func, select

from tympan.store.schema import preferences


def record(conn: Connection, **fields: Any) -> None:
    """Store one judgement, replacing the listener's earlier one of the same pair."""
    conn.execute(delete(preferences).where(
        preferences.c.study_id == fields["study_id"],
        preferences.c.listener == fields["listener"],
        preferences.c.arm_sample == fields["arm_sample"],
        preferences.c.baseline_sample == fields["baseline_sample"]))
    conn.execute(preferences.insert().values(**fields))


def for_study(conn: Connection, study_id: str, arm: str | None = None) -> list[Row]:
    """The study's judgements (of one arm's test), oldest first."""
    stmt = select(preferences).where(preferences.c.study_id == study_id)
    if arm is not None:
        stmt = stmt.where(preferences.c.arm == arm)
    return list(conn.execute(stmt.order_by(preferences.c.created_at, preferences.c.id)))


def fingerprint(conn: Connection, study_id: str) -> tuple[int, float | None]:
    """(count, newest created_at) of the study's judgements: changes with every new one."""
    row = conn.execute(select(func.count(), func.max(preferences.c.created_at))
                       .where(preferences.c.study_id == study_id)).one()
    return int(row[0]), row[1]
