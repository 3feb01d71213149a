"""Reads for tables of many runs (the UI's runs table, its groups, compares): the columns of
thousands of runs in one query, and one metric summary across them in another."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, Text, cast, func, or_, select

from tympan.store.schema import audio_samples, projects, run_summaries, runs

# config and tags come as JSON text (``config_json``, ``tags_json``): callers parse them once
# per distinct text and cache the result, which makes 10,000-run tables cheap to re-read.
TABLE_COLUMNS = (
    runs.c.id, runs.c.name, runs.c.project_id, runs.c.status, runs.c.created_at,
    runs.c.started_at, runs.c.ended_at, runs.c.heartbeat_at,
    cast(runs.c.config, Text).label("config_json"), cast(runs.c.tags, Text).label("tags_json"),
    runs.c.seed, runs.c.study_id, runs.c.host, runs.c.pid,
)
SUMMARY_FIELDS = ("last", "min", "max", "count")


def table_rows(
    conn: Connection,
    project_ids: Sequence[int] | None = None,
    study_id: str | None = None,
    text: str | None = None,
    run_ids: Sequence[str] | None = None,
) -> list[Row]:
    """The table columns of the runs matching the filters, newest first.

    ``text`` matches a substring of the name (case-insensitive) or of the id.
    """
    stmt = select(*TABLE_COLUMNS).order_by(runs.c.started_at.desc(), runs.c.id)
    if project_ids is not None:
        stmt = stmt.where(runs.c.project_id.in_(project_ids))
    if study_id is not None:
        stmt = stmt.where(runs.c.study_id == study_id)
    if run_ids is not None:
        stmt = stmt.where(runs.c.id.in_(run_ids))
    if text:
        stmt = stmt.where(or_(
            func.lower(runs.c.name).contains(text.lower(), autoescape=True),
            runs.c.id.contains(text.lower(), autoescape=True),
        ))
    return conn.execute(stmt).all()


def summary_column(conn: Connection, key: str, field: str,
                   project_ids: Sequence[int] | None = None) -> dict[str, float | None]:
    """run id -> one summary field (``last``, ``min``, ``max`` or ``count``) of metric
    ``key``, for every run that logged it (within ``project_ids`` if given)."""
    if field not in SUMMARY_FIELDS:
        raise ValueError(f"unknown summary field {field!r}")
    column = run_summaries.c[field]
    stmt = select(run_summaries.c.run_id, column, run_summaries.c.count).where(
        run_summaries.c.key == key)
    if project_ids is not None:
        stmt = stmt.join(runs, runs.c.id == run_summaries.c.run_id).where(
            runs.c.project_id.in_(project_ids))
    out: dict[str, float | None] = {}
    for run_id, value, count in conn.execute(stmt).all():
        if value is None and count and field != "count":
            value = float("nan")  # SQLite stores NaN as NULL; count says it was set
        out[run_id] = value
    return out


def metric_keys(conn: Connection, project_ids: Sequence[int] | None = None) -> list[str]:
    """Every metric key some run (of ``project_ids`` if given) has a summary for, sorted."""
    stmt = select(run_summaries.c.key).group_by(run_summaries.c.key).order_by(
        run_summaries.c.key)
    if project_ids is not None:
        stmt = (select(run_summaries.c.key)
                .join(runs, runs.c.id == run_summaries.c.run_id)
                .where(runs.c.project_id.in_(project_ids))
                .group_by(run_summaries.c.key).order_by(run_summaries.c.key))
    return list(conn.execute(stmt).scalars())


def project_counts(conn: Connection) -> list[tuple[str, int, float | None]]:
    """(project name, its number of runs, when its latest run started), by name."""
    stmt = (select(projects.c.name, func.count(runs.c.id), func.max(runs.c.started_at))
            .select_from(projects.outerjoin(runs, runs.c.project_id == projects.c.id))
            .group_by(projects.c.id, projects.c.name).order_by(projects.c.name))
    return [(name, count, last) for name, count, last in conn.execute(stmt)]


def audio_index(conn: Connection, run_ids: Sequence[str]) -> list[Any]:
    """(run_id, key, step, id) of every audio sample of these runs, by key and step."""
    if not run_ids:
        return []
    stmt = (select(audio_samples.c.run_id, audio_samples.c.key, audio_samples.c.step,
                   audio_samples.c.id)
            .where(audio_samples.c.run_id.in_(run_ids))
            .order_by(audio_samples.c.key, audio_samples.c.step, audio_samples.c.id))
    return conn.execute(stmt).all()


def running_rows(conn: Connection, project_ids: Sequence[int] | None = None) -> list[Row]:
    """The rows liveness needs (id, status, host, pid, heartbeat_at, started_at) of the runs
    stored as running."""
    stmt = select(runs.c.id, runs.c.status, runs.c.host, runs.c.pid, runs.c.heartbeat_at,
                  runs.c.started_at).where(runs.c.status == "running")
    if project_ids is not None:
        stmt = stmt.where(runs.c.project_id.in_(project_ids))
    return conn.execute(stmt).all()


def _filtered(stmt: Any, project_ids: Sequence[int] | None, study_id: str | None,
              text: str | None, statuses: Sequence[str]) -> Any:
    if project_ids is not None:
        stmt = stmt.where(runs.c.project_id.in_(project_ids))
    if study_id is not None:
        stmt = stmt.where(runs.c.study_id == study_id)
    if statuses:
        stmt = stmt.where(runs.c.status.in_(statuses))
    if text:
        stmt = stmt.where(or_(
            func.lower(runs.c.name).contains(text.lower(), autoescape=True),
            runs.c.id.contains(text.lower(), autoescape=True),
        ))
    return stmt


def page_rows(
    conn: Connection,
    *,
    project_ids: Sequence[int] | None = None,
    study_id: str | None = None,
    text: str | None = None,
    statuses: Sequence[str] = (),
    field: str | None = None,
    metric: tuple[str, str] | None = None,
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[Row]]:
    """(how many runs match, the table columns of one page of them), all in SQL.

    Ordered by the run column ``field`` (``duration`` is computed), by a metric summary
    ``metric`` = (key, last|min|max|count), or newest first; rows without the value last.
    """
    total = conn.execute(_filtered(select(func.count()).select_from(runs), project_ids,
                                   study_id, text, statuses)).scalar_one()
    stmt = _filtered(select(*TABLE_COLUMNS), project_ids, study_id, text, statuses)
    if metric is not None:
        key, summary = metric
        if summary not in SUMMARY_FIELDS:
            raise ValueError(f"unknown summary field {summary!r}")
        stmt = stmt.outerjoin(run_summaries, (run_summaries.c.run_id == runs.c.id)
                              & (run_summaries.c.key == key))
        value: Any = run_summaries.c[summary]
        if conn.dialect.name == "postgresql" and summary != "count":
            value = func.nullif(value, float("nan"))  # NaN sorts as missing, as in SQLite
    elif field == "duration":
        value = func.coalesce(runs.c.ended_at, runs.c.heartbeat_at) - runs.c.started_at
    elif field is not None:
        value = runs.c[field]
    else:
        value, descending = runs.c.started_at, True
    order = value.desc() if descending else value.asc()
    stmt = stmt.order_by(order.nulls_last(), runs.c.id).limit(limit).offset(offset)
    return total, conn.execute(stmt).all()


def scope_signature(conn: Connection, project_ids: Sequence[int] | None = None,
                    study_id: str | None = None) -> tuple:
    """(count, newest created_at) of the runs in scope: changes whenever a run is added or
    deleted there, so what is derived from their configs can be cached on it."""
    stmt = _filtered(select(func.count(), func.max(runs.c.created_at)).select_from(runs),
                     project_ids, study_id, None, ())
    return tuple(conn.execute(stmt).one())


def config_texts(conn: Connection, project_ids: Sequence[int] | None = None,
                 study_id: str | None = None) -> list[str | None]:
    """The config JSON text of every run in scope."""
    stmt = _filtered(select(cast(runs.c.config, Text)), project_ids, study_id, None, ())
    return list(conn.execute(stmt).scalars().all())
