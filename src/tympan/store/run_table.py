"""Reads for tables of many runs (the UI's runs table, its groups, compares): the columns of
thousands of runs in one query, and one metric summary across them in another."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, Text, and_, cast, func, or_, select

from tympan.store.run_where import (
    RunOrder,
    RunTest,
    condition,
    config_array,
    config_integer,
    finite,
    metric_join,
    order_terms,
    summary_present,
)
from tympan.store.schema import audio_samples, projects, run_summaries, runs

# config and tags come as JSON text (``config_json``, ``tags_json``): callers parse them once
# per distinct text and cache the result, which makes 10,000-run tables cheap to re-read.
TABLE_COLUMNS = (
    runs.c.id, runs.c.name, runs.c.project_id, runs.c.status, runs.c.created_at,
    runs.c.started_at, runs.c.ended_at, runs.c.heartbeat_at,
    cast(runs.c.config, Text).label("config_json"), cast(runs.c.tags, Text).label("tags_json"),
    runs.c.seed, runs.c.study_id, runs.c.host, runs.c.pid, runs.c.parent_id,
    runs.c.archived_at,
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


def metric_keys(conn: Connection, project_ids: Sequence[int] | None = None,
                study_id: str | None = None, *, since: float | None = None,
                run_ids: Sequence[str] | None = None) -> list[str]:
    """Every metric key some run (of ``project_ids`` and ``study_id`` if given; created after
    ``since``; one of ``run_ids``) has a summary for, sorted."""
    found: set[str] = set()
    for batch in _batches(run_ids):
        stmt = select(run_summaries.c.key).group_by(run_summaries.c.key)
        if project_ids is not None or study_id is not None or since is not None:
            stmt = _filtered(stmt.join(runs, runs.c.id == run_summaries.c.run_id), project_ids,
                             study_id)
            if since is not None:
                stmt = stmt.where(runs.c.created_at > since)
        if batch is not None:
            stmt = stmt.where(run_summaries.c.run_id.in_(batch))
        found.update(conn.execute(stmt).scalars())
    return sorted(found)


def running_ids(conn: Connection, project_ids: Sequence[int] | None = None,
                study_id: str | None = None) -> list[str]:
    """The ids of the runs in scope stored as running."""
    stmt = _filtered(select(runs.c.id).where(runs.c.status == "running"), project_ids,
                     study_id)
    return list(conn.execute(stmt).scalars())


def _batches(ids: Sequence[str] | None, size: int = 500) -> list[Sequence[str] | None]:
    """``ids`` in slices for IN (...); [None] (no slicing) for None."""
    if ids is None:
        return [None]
    return [ids[i:i + size] for i in range(0, len(ids), size)]


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
              tests: Sequence[RunTest] = (), dialect: str = "sqlite") -> Any:
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
    dialect = conn.dialect.name
    total = conn.execute(_filtered(select(func.count()).select_from(runs), project_ids,
                                   study_id, tests, dialect)).scalar_one()
    if order is not None and order.kind == "metric":
        return total, _by_metric(conn, project_ids, study_id, tests, order, limit, offset)
    stmt = _filtered(select(*TABLE_COLUMNS), project_ids, study_id, tests, dialect)
    terms = order_terms(dialect, order) if order else [runs.c.started_at.desc(), runs.c.id]
    stmt = stmt.order_by(*terms).limit(limit).offset(offset)
    return total, conn.execute(stmt).all()


def _by_metric(conn: Connection, project_ids: Sequence[int] | None, study_id: str | None,
               tests: Sequence[RunTest], order: RunOrder, limit: int | None, offset: int
               ) -> list[Row]:
    """A page in order of a metric summary: first the runs that have it, walking the key's
    summary index in order and stopping at the page's end; then, if the page is not full,
    the runs without it (missing or NaN) by id."""
    dialect = conn.dialect.name
    value = run_summaries.c[order.summary]
    has = and_(run_summaries.c.key == order.key,
               summary_present(dialect, order.summary))
    joined = run_summaries.join(runs, runs.c.id == run_summaries.c.run_id)
    valued = _filtered(select(*TABLE_COLUMNS).select_from(joined).where(has), project_ids,
                       study_id, tests, dialect)
    first = value.desc() if order.descending else value.asc()
    rows = list(conn.execute(valued.order_by(first, run_summaries.c.run_id)
                             .limit(limit).offset(offset)).all())
    if limit is not None and len(rows) == limit:
        return rows
    before = conn.execute(_filtered(select(func.count()).select_from(joined).where(has),
                                    project_ids, study_id, tests, dialect)).scalar_one()
    rest = _filtered(select(*TABLE_COLUMNS), project_ids, study_id, tests, dialect).where(
        runs.c.id.not_in(select(run_summaries.c.run_id).where(has)))
    rest = rest.order_by(runs.c.id).offset(max(0, offset - before))
    if limit is not None:
        rest = rest.limit(limit - len(rows))
    return rows + list(conn.execute(rest).all())


def group_rows(
    conn: Connection,
    by: Sequence[str],
    *,
    project_ids: Sequence[int] | None = None,
    study_id: str | None = None,
    tests: Sequence[RunTest] = (),
    metric: tuple[str, str] | None = None,
    members: int | None = None,
) -> list[dict[str, Any]]:
    """The runs passing ``tests`` grouped by the config keys ``by``, all in SQL: one dict per
    listed member, its group's first ``members`` runs (all with None; at least one, which
    carries the group) in member order (seed, missing last, then started_at and id).

    Each dict has the member's id, name, status, seed (recorded, else the config's integer
    ``seed``), started_at and ``value`` (the summary ``metric`` = (key, last|min|max), None
    when missing or not finite), and its group's ``group`` (JSON text of a list starting with
    the values of ``by``, null where runs lack one), ``size`` (runs), ``n`` (finite values),
    ``mean`` and ``squares`` (the sum of squared deviations from the mean)."""
    dialect = conn.dialect.name
    columns = [runs.c.id, runs.c.name, runs.c.status,
               func.coalesce(runs.c.seed, config_integer(dialect, "seed")).label("seed"),
               runs.c.started_at, config_array(dialect, by).label("group")]
    shift = 0.0
    if metric is not None:
        value = finite(run_summaries.c[metric[1]])
        # sums of differences from a value among the metric's (an index lookup) keep the
        # squares' precision when values are large next to their spread
        shift = conn.execute(select(func.min(value)).where(
            run_summaries.c.key == metric[0], value.is_not(None))).scalar() or 0.0
        columns.append(value.label("value"))
    stmt = _filtered(select(*columns), project_ids, study_id, tests, dialect)
    if metric is not None:
        stmt = metric_join(stmt, RunOrder("metric", metric[0], metric[1]))
    # each run's JSON parsed once (a materialized CTE), then one window (one sort): ranks
    # and whole-group sums over the same rows
    run = stmt.cte("grouped").prefix_with("MATERIALIZED")
    whole = {"partition_by": run.c.group, "rows": (None, None),
             "order_by": [run.c.seed.is_(None), run.c.seed, run.c.started_at, run.c.id]}
    window = [run, func.count().over(**whole).label("size"),
              func.row_number().over(**whole).label("rank")]
    if metric is not None:
        shifted = run.c.value - shift
        window += [func.count(run.c.value).over(**whole).label("n"),
                   func.sum(shifted).over(**whole).label("sum"),
                   func.sum(shifted * shifted).over(**whole).label("sum2")]
    ranked = select(*window).subquery()
    stmt = select(ranked).order_by(ranked.c.group, ranked.c.rank)
    if members is not None:
        stmt = stmt.where(ranked.c.rank <= max(members, 1))
    out = []
    for row in conn.execute(stmt).mappings():
        found = dict(row)
        n, total, total2 = found.pop("n", 0), found.pop("sum", None), found.pop("sum2", None)
        found.update(value=found.get("value"), n=n, mean=None, squares=None)
        if n:
            found["mean"] = shift + total / n
            found["squares"] = max(0.0, total2 - total * total / n)
        out.append(found)
    return out


def scope_signature(conn: Connection, project_ids: Sequence[int] | None = None,
                    study_id: str | None = None) -> tuple:
    """(count, newest created_at) of the runs in scope: changes whenever a run is added or
    deleted there, so what is derived from their configs can be cached on it."""
    stmt = _filtered(select(func.count(), func.max(runs.c.created_at)).select_from(runs),
                     project_ids, study_id)
    return tuple(conn.execute(stmt).one())


def config_texts(conn: Connection, project_ids: Sequence[int] | None = None,
                 study_id: str | None = None, since: float | None = None,
                 run_ids: Sequence[str] | None = None) -> list[str | None]:
    """The config JSON text of every run in scope (created after ``since``, one of
    ``run_ids``, if given)."""
    texts: list[str | None] = []
    for batch in _batches(run_ids):
        stmt = _filtered(select(cast(runs.c.config, Text)), project_ids, study_id)
        if since is not None:
            stmt = stmt.where(runs.c.created_at > since)
        if batch is not None:
            stmt = stmt.where(runs.c.id.in_(batch))
        texts += conn.execute(stmt).scalars().all()
    return texts


def created_since(conn: Connection, project_ids: Sequence[int] | None, study_id: str | None,
                  since: float) -> int:
    """How many runs in scope were created after ``since``."""
    stmt = _filtered(select(func.count()).select_from(runs), project_ids, study_id)
    return conn.execute(stmt.where(runs.c.created_at > since)).scalar_one()

