"""Finding records: one row per comparison of an analysed study (see study/findings.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, select

from tympan.store.schema import findings, projects, studies


def replace_for_study(conn: Connection, study_id: str, rows: list[dict[str, Any]]) -> None:
    """The study's findings become ``rows`` (each a findings row without ``study_id``)."""
    conn.execute(delete(findings).where(findings.c.study_id == study_id))
    if rows:
        conn.execute(findings.insert(), [{**row, "study_id": study_id} for row in rows])


def query(conn: Connection, component: str | None = None,
          metric: str | None = None, project: str | None = None) -> list[Row]:
    """Findings rows with their study's name and project (``study_name``, ``project``,
    ``study_created_at``), oldest study first; ``project``: only that project's studies."""
    stmt = (select(findings, studies.c.name.label("study_name"),
                   studies.c.created_at.label("study_created_at"),
                   projects.c.name.label("project"))
            .join(studies, studies.c.id == findings.c.study_id)
            .join(projects, projects.c.id == studies.c.project_id))
    if component is not None:
        stmt = stmt.where(findings.c.component == component)
    if metric is not None:
        stmt = stmt.where(findings.c.metric == metric)
    if project is not None:
        stmt = stmt.where(projects.c.name == project)
    return list(conn.execute(stmt.order_by(studies.c.created_at, findings.c.study_id,
                                           findings.c.id)))
