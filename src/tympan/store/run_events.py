"""The audit trail of run management: one row per change a person made to a run (rename,
tags, note, archive, unarchive, delete), with who made it and what it was before and after.
Rows are only ever added; a deleted run's rows stay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from tympan.store.schema import RUN_EVENT_ACTIONS, run_events


def add(conn: Connection, run_id: str, project_id: int, action: str, actor: str,
        detail: dict[str, Any], at: float) -> None:
    if action not in RUN_EVENT_ACTIONS:
        raise ValueError(f"unknown run event {action!r}")
    conn.execute(run_events.insert().values(run_id=run_id, project_id=project_id,
                                            action=action, actor=actor, detail=detail, at=at))


def listed(conn: Connection, *, run_id: str | None = None,
           project_ids: Sequence[int] | None = None, limit: int = 100) -> list[Row]:
    """The newest ``limit`` events (of one run, of these projects), newest first."""
    stmt = select(run_events)
    if run_id is not None:
        stmt = stmt.where(run_events.c.run_id == run_id)
    if project_ids is not None:
        stmt = stmt.where(run_events.c.project_id.in_(list(project_ids)))
    stmt = stmt.order_by(run_events.c.at.desc(), run_events.c.id.desc()).limit(limit)
    return list(conn.execute(stmt))
