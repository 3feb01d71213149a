"""Reads for tables of many runs (the UI's runs table, its groups, compares): the columns of
thousands of runs in one query, and one metric summary across them in another."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from tympan.store import statements
from tympan.store.run_where import RunOrder, RunTest

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row

SUMMARY_FIELDS = ("last", "min", "max", "count")


@cache
def table_columns() -> tuple[Any, ...]:
    """The runs table's columns. Config and tags come as JSON text (``config_json``,
    ``tags_json``): callers parse them once per distinct text and cache the result, which
    makes 10,000-run tables cheap to re-read."""
    from sqlalchemy import Text, cast

    from tympan.store.schema import runs

    return (
        runs.c.id, runs.c.name, runs.c.project_id, runs.c.status, runs.c.created_at,
        runs.c.started_at, runs.c.ended_at, runs.c.heartbeat_at,
        cast(runs.c.config, Text).label("config_json"),
        cast(runs.c.tags, Text).label("tags_json"),
        runs.c.seed, runs.c.study_id, runs.c.host, runs.c.pid, runs.c.parent_id,
        runs.c.archived_at,
    )


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
    from sqlalchemy import func, or_, select

    from tympan.store.schema import runs

    stmt = select(*table_columns()).order_by(runs.c.started_at.desc(), runs.c.id)
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
    from sqlalchemy import select

    from tympan.store.schema import run_summaries, runs

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


def metric_keys(conn: Connection, project_ids: Sequence[int] | None = None,
                study_id: str | None = None, *, since: float | None = None,
                run_ids: Sequence[str] | None = None) -> list[str]:
    """Every metric key some run (of ``project_ids`` and ``study_id`` if given; created after
    ``since``; one of ``run_ids``) has a summary for, sorted."""
    found: set[str] = set()
    for batch in _batches(run_ids):
        found.update(statements.scalars(
            conn, _metric_keys, project_ids is not None, study_id is not None,
            since is not None, batch is not None,
            **_scope(project_ids, study_id, since, batch)))
    return sorted(found)


def _metric_keys(in_projects: bool, in_study: bool, since: bool, of_runs: bool) -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import run_summaries, runs

    stmt = select(run_summaries.c.key).group_by(run_summaries.c.key)
    if in_projects or in_study or since:
        stmt = _in_scope(stmt.join(runs, runs.c.id == run_summaries.c.run_id), in_projects,
                         in_study, since)
    if of_runs:
        stmt = stmt.where(run_summaries.c.run_id.in_(bindparam("run_ids", expanding=True)))
    return stmt


def running_ids(conn: Connection, project_ids: Sequence[int] | None = None,
                study_id: str | None = None) -> list[str]:
    """The ids of the runs in scope stored as running."""
    return statements.scalars(conn, _running_ids, project_ids is not None,
                              study_id is not None, **_scope(project_ids, study_id))


def _running_ids(in_projects: bool, in_study: bool) -> Any:
    from sqlalchemy import select

    from tympan.store.schema import runs

    stmt = select(runs.c.id).where(runs.c.status == "running")
    if in_projects:
        stmt = stmt.where(_not_indexed_project().in_(_ids_param()))
    return _in_scope(stmt, False, in_study)


def _batches(ids: Sequence[str] | None, size: int = 500) -> list[Sequence[str] | None]:
    """``ids`` in slices for IN (...); [None] (no slicing) for None."""
    if ids is None:
        return [None]
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def project_counts(conn: Connection) -> list[tuple[str, int, float | None]]:
    """(project name, its number of runs, when its latest run started), by name."""
    from sqlalchemy import func, select

    from tympan.store.schema import projects, runs

    stmt = (select(projects.c.name, func.count(runs.c.id), func.max(runs.c.started_at))
            .select_from(projects.outerjoin(runs, runs.c.project_id == projects.c.id))
            .group_by(projects.c.id, projects.c.name).order_by(projects.c.name))
    return [(name, count, last) for name, count, last in conn.execute(stmt)]


def audio_index(conn: Connection, run_ids: Sequence[str]) -> list[Any]:
    """(run_id, key, step, id) of every audio sample of these runs, by key and step."""
    from sqlalchemy import select

    from tympan.store.schema import audio_samples

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
    return statements.rows(conn, _running, project_ids is not None,
                           **_scope(project_ids, None))


def _running(in_projects: bool) -> Any:
    from sqlalchemy import select

    from tympan.store.schema import runs

    stmt = select(runs.c.id, runs.c.status, runs.c.host, runs.c.pid, runs.c.heartbeat_at,
                  runs.c.started_at).where(runs.c.status == "running")
    return stmt.where(_not_indexed_project().in_(_ids_param())) if in_projects else stmt


def _not_indexed_project() -> Any:
    """``runs.project_id`` as an expression no index answers: with both a project and
    ``status = 'running'`` to go by, SQLite (no statistics) walks the project's index and
    reads every run of it (25 ms at 100,000 runs); through the status index the few running
    runs take 0.1 ms."""
    from tympan.store.schema import runs

    return runs.c.project_id + 0


def _ids_param() -> Any:
    from sqlalchemy import bindparam

    return bindparam("project_ids", expanding=True)


def _in_scope(stmt: Any, in_projects: bool, in_study: bool, since: bool = False) -> Any:
    """``stmt`` (on runs) limited by the parameters ``project_ids`` (a list), ``study_id``
    and ``since`` (created after) where asked; :func:`_scope` gives their values."""
    from sqlalchemy import bindparam

    from tympan.store.schema import runs

    stmt = _filtered(stmt, _ids_param() if in_projects else None,
                     bindparam("study_id") if in_study else None)
    return stmt.where(runs.c.created_at > bindparam("since")) if since else stmt


def _scope(project_ids: Sequence[int] | None, study_id: str | None, since: float | None = None,
           run_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The parameters of a statement built by :func:`_in_scope` (and ``run_ids``)."""
    given: dict[str, Any] = {}
    if project_ids is not None:
        given["project_ids"] = list(project_ids)
    if study_id is not None:
        given["study_id"] = study_id
    if since is not None:
        given["since"] = since
    if run_ids is not None:
        given["run_ids"] = list(run_ids)
    return given


def _filtered(stmt: Any, project_ids: Sequence[int] | None, study_id: str | None,
              tests: Sequence[RunTest] = (), dialect: str = "sqlite") -> Any:
    from tympan.store.run_where import condition
    from tympan.store.schema import runs

    if project_ids is not None:
        stmt = stmt.where(runs.c.project_id.in_(project_ids))
    if study_id is not None:
        stmt = stmt.where(runs.c.study_id == study_id)
    for test in tests:
        stmt = stmt.where(condition(dialect, test))
    return stmt


def page_rows(
    conn: Connection,
    *,
    project_ids: Sequence[int] | None = None,
    study_id: str | None = None,
    tests: Sequence[RunTest] = (),
    order: RunOrder | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> tuple[int, list[Row]]:
    """(how many runs pass ``tests``, the table columns of one page of them in ``order``,
    newest first without one), all in SQL: rows without the order's value come last."""
    scope = (statements.dialect(conn), project_ids is not None, study_id is not None,
             tuple(tests))
    given = _scope(project_ids, study_id)
    total = statements.scalar(conn, _count, *scope, **given)
    if order is not None and order.kind == "metric":
        return total, _by_metric(conn, scope, given, order, limit, offset)
    return total, statements.rows(conn, _page, *scope, order, limit is not None,
                                  **given, **_window(limit, offset))


def _window(limit: int | None, offset: int) -> dict[str, int]:
    """The page's LIMIT and OFFSET as parameters: one statement serves every page."""
    return {"offset": offset} if limit is None else {"limit": limit, "offset": offset}


def _paged(stmt: Any, limited: bool) -> Any:
    from sqlalchemy import bindparam

    if limited:
        stmt = stmt.limit(bindparam("limit", type_=None))
    return stmt.offset(bindparam("offset"))


def _tested(stmt: Any, dialect: str, in_projects: bool, in_study: bool,
            tests: tuple[RunTest, ...]) -> Any:
    """``stmt`` limited to the scope's runs (see :func:`_in_scope`) that pass ``tests``."""
    from tympan.store.run_where import condition

    stmt = _in_scope(stmt, in_projects, in_study)
    for test in tests:
        stmt = stmt.where(condition(dialect, test))
    return stmt


def _count(dialect: str, in_projects: bool, in_study: bool, tests: tuple[RunTest, ...]
           ) -> Any:
    from sqlalchemy import func, select

    from tympan.store.schema import runs

    return _tested(select(func.count()).select_from(runs), dialect, in_projects, in_study,
                   tests)


def _page(dialect: str, in_projects: bool, in_study: bool, tests: tuple[RunTest, ...],
          order: RunOrder | None, limited: bool) -> Any:
    from sqlalchemy import select

    from tympan.store.run_where import order_terms
    from tympan.store.schema import runs

    stmt = _tested(select(*table_columns()), dialect, in_projects, in_study, tests)
    terms = order_terms(dialect, order) if order else [runs.c.started_at.desc(), runs.c.id]
    return _paged(stmt.order_by(*terms), limited)


def _by_metric(conn: Connection, scope: tuple, given: dict[str, Any], order: RunOrder,
               limit: int | None, offset: int) -> list[Row]:
    """A page in order of a metric summary: first the runs that have it, walking the key's
    summary index in order and stopping at the page's end; then, if the page is not full,
    the runs without it (missing or NaN) by id. ``scope`` and ``given`` as in page_rows."""
    rows = statements.rows(conn, _valued_page, *scope, order, limit is not None, **given,
                           **_window(limit, offset))
    if limit is not None and len(rows) == limit:
        return rows
    before = statements.scalar(conn, _valued_count, *scope, order, **given)
    rest = None if limit is None else limit - len(rows)
    return rows + statements.rows(conn, _unvalued_page, *scope, order, rest is not None,
                                  **given, **_window(rest, max(0, offset - before)))


def _valued(dialect: str, order: RunOrder) -> tuple[Any, Any]:
    """(the runs joined to their summary of ``order``'s metric, which summaries count)."""
    from sqlalchemy import and_

    from tympan.store.run_where import summary_present
    from tympan.store.schema import run_summaries, runs

    has = and_(run_summaries.c.key == order.key, summary_present(dialect, order.summary))
    return run_summaries.join(runs, runs.c.id == run_summaries.c.run_id), has


def _valued_page(dialect: str, in_projects: bool, in_study: bool, tests: tuple[RunTest, ...],
                 order: RunOrder, limited: bool) -> Any:
    from sqlalchemy import select

    from tympan.store.schema import run_summaries

    joined, has = _valued(dialect, order)
    value = run_summaries.c[order.summary]
    stmt = _tested(select(*table_columns()).select_from(joined).where(has), dialect,
                   in_projects, in_study, tests)
    first = value.desc() if order.descending else value.asc()
    return _paged(stmt.order_by(first, run_summaries.c.run_id), limited)


def _valued_count(dialect: str, in_projects: bool, in_study: bool, tests: tuple[RunTest, ...],
                  order: RunOrder) -> Any:
    from sqlalchemy import func, select

    joined, has = _valued(dialect, order)
    return _tested(select(func.count()).select_from(joined).where(has), dialect, in_projects,
                   in_study, tests)


def _unvalued_page(dialect: str, in_projects: bool, in_study: bool,
                   tests: tuple[RunTest, ...], order: RunOrder, limited: bool) -> Any:
    from sqlalchemy import select

    from tympan.store.schema import run_summaries, runs

    _, has = _valued(dialect, order)
    stmt = _tested(select(*table_columns()), dialect, in_projects, in_study, tests).where(
        runs.c.id.not_in(select(run_summaries.c.run_id).where(has)))
    return _paged(stmt.order_by(runs.c.id), limited)


def scope_signature(conn: Connection, project_ids: Sequence[int] | None = None,
                    study_id: str | None = None) -> tuple:
    """(count, newest created_at) of the runs in scope: changes whenever a run is added or
    deleted there, so what is derived from their configs can be cached on it. Two
    statements: the newest is then an index lookup, where in one with the count it was read
    from every run's index entry (10 ms at 100,000 runs)."""
    shape = (project_ids is not None, study_id is not None)
    scope = _scope(project_ids, study_id)
    return tuple(statements.rows(conn, aggregate, *shape, **scope)[0][0]
                 for aggregate in (_scope_count, _scope_newest))


def _scope_count(in_projects: bool, in_study: bool) -> Any:
    from sqlalchemy import func, select

    from tympan.store.schema import runs

    return _in_scope(select(func.count()).select_from(runs), in_projects, in_study)


def _scope_newest(in_projects: bool, in_study: bool) -> Any:
    from sqlalchemy import func, select

    from tympan.store.schema import runs

    return _in_scope(select(func.max(runs.c.created_at)), in_projects, in_study)


def config_texts(conn: Connection, project_ids: Sequence[int] | None = None,
                 study_id: str | None = None, since: float | None = None,
                 run_ids: Sequence[str] | None = None) -> list[str | None]:
    """The config JSON text of every run in scope (created after ``since``, one of
    ``run_ids``, if given)."""
    texts: list[str | None] = []
    for batch in _batches(run_ids):
        texts += statements.scalars(conn, _config_texts, project_ids is not None,
                                    study_id is not None, since is not None, batch is not None,
                                    **_scope(project_ids, study_id, since, batch))
    return texts


def _config_texts(in_projects: bool, in_study: bool, since: bool, of_runs: bool) -> Any:
    from sqlalchemy import Text, bindparam, cast, select

    from tympan.store.schema import runs

    stmt = _in_scope(select(cast(runs.c.config, Text)), in_projects, in_study, since)
    if of_runs:
        stmt = stmt.where(runs.c.id.in_(bindparam("run_ids", expanding=True)))
    return stmt


def created_since(conn: Connection, project_ids: Sequence[int] | None, study_id: str | None,
                  since: float) -> int:
    """How many runs in scope were created after ``since``."""
    return statements.scalar(conn, _created_since, project_ids is not None,
                             study_id is not None, **_scope(project_ids, study_id, since))


def _created_since(in_projects: bool, in_study: bool) -> Any:
    from sqlalchemy import func, select

    from tympan.store.schema import runs

    return _in_scope(select(func.count()).select_from(runs), in_projects, in_study, True)
