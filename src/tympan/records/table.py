"""Running a :class:`~tympan.records.query.RunQuery` against a store: the runs table's page
(:func:`query_runs`, rows of :class:`TableRun`), the same runs as full records
(:func:`find_runs`), and the rows of runs named by id (:func:`runs_by_id`).

Filters and sorts the database can do run in SQL and return only the page; the others read
the table columns of every run in scope once and filter in memory (parsed JSON is cached by
its text, so re-reading a 10,000-run table parses almost nothing).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tympan.config import config_text, flatten
from tympan.errors import InvalidInputError
from tympan.records.query import RunFilter, RunQuery, Sort
from tympan.records.record import RunRecord, record_of
from tympan.store import Store, projects, runs
from tympan.store import run_table as table
from tympan.store.summaries import Summary, for_runs
from tympan.track import liveness

__all__ = ["RunPage", "TableRun", "check_project", "find_runs", "matching_runs", "order_key",
           "query_runs", "runs_by_id"]


@dataclass
class TableRun:
    """One row of the runs table."""

    id: str
    name: str
    project: str
    status: str
    created_at: float
    started_at: float
    ended_at: float | None
    heartbeat_at: float | None
    tags: list[str]
    seed: int | None
    study_id: str | None
    config: dict[str, Any]  # flattened: dotted keys
    metrics: dict[str, Summary] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        end = self.ended_at or self.heartbeat_at
        return None if end is None else max(0.0, end - self.started_at)


@dataclass
class RunPage:
    total: int  # runs matching the filters
    offset: int
    limit: int | None
    runs: list[TableRun]
    config_keys: list[str]  # every config key among the runs in scope (project, study)
    metric_keys: list[str]


def query_runs(store: Store, query: RunQuery) -> RunPage:
    """One page of the runs table, with the metric summaries of its runs and the config and
    metric keys of the runs in scope (what the table can show as columns)."""
    total, page = _select(store, query)
    f = query.filter
    with store.read() as conn:
        summaries = for_runs(conn, [r.id for r in page])
        ids = _project_ids(projects.names(conn), f.project)
        config_keys = _config_keys(store, conn, ids, f.study)
        if f.study is None:
            metric_keys = [] if ids == [] else table.metric_keys(conn, ids)
        else:  # keys of the study's runs only
            study_ids = [r.id for r in table.table_rows(conn, project_ids=ids,
                                                        study_id=f.study)]
            metric_keys = sorted({k for s in for_runs(conn, study_ids).values() for k in s})
    for run in page:
        run.metrics = summaries[run.id]
    return RunPage(total, query.offset, query.limit, page, config_keys, metric_keys)


def find_runs(store: Store, query: RunQuery) -> list[RunRecord]:
    """The runs ``query`` selects, in its order, as full records with their summaries; an
    unknown project is refused (see :func:`check_project`)."""
    check_project(store, query.filter.project)
    _, page = _select(store, query)
    ids = [r.id for r in page]
    with store.read() as conn:
        names = projects.names(conn)
        rows = {row.id: row for row in runs.by_ids(conn, ids)}
        summaries = for_runs(conn, ids)
    records = []
    for run in page:
        record = record_of(rows[run.id], names[rows[run.id].project_id], summaries[run.id],
                           store)
        record.status = run.status  # as liveness left it
        records.append(record)
    return records


def runs_by_id(store: Store, run_ids: Sequence[str]) -> dict[str, TableRun]:
    """The table rows of the runs with these exact ids (missing ones are left out)."""
    with store.read() as conn:
        names = projects.names(conn)
        rows = table.table_rows(conn, run_ids=list(run_ids))
    crashed = liveness.reconcile(store, [r for r in rows if r.status == "running"])
    return {row.id: _table_run(row, names, crashed) for row in rows}


def matching_runs(store: Store, filters: RunFilter) -> list[TableRun]:
    """Every run matching ``filters``, newest first; a dead 'running' run shows (and is
    stored) as crashed."""
    with store.read() as conn:
        names = projects.names(conn)
        project_ids = _project_ids(names, filters.project)
        rows = table.table_rows(conn, project_ids=project_ids, study_id=filters.study,
                                text=filters.text)
    crashed = liveness.reconcile(store, [r for r in rows if r.status == "running"])
    scope = [_table_run(row, names, crashed) for row in rows]
    wanted = set(filters.statuses)
    tags = set(filters.tags)
    return [
        r for r in scope
        if (not wanted or r.status in wanted)
        and (not tags or tags <= set(r.tags))
        and all(_holds(c, r.config) for c in filters.where)
    ]


def _select(store: Store, query: RunQuery) -> tuple[int, list[TableRun]]:
    """(how many runs match, the page of them in order), without summaries."""
    f, sort = query.filter, query.sort
    if not f.tags and not f.where and (sort is None or sort.kind != "config"):
        return _select_in_sql(store, query)
    selected = matching_runs(store, f)
    if sort is not None:
        with store.read() as conn:
            ids = _project_ids(projects.names(conn), f.project)
        selected = sort_runs(store, selected, sort, query.descending, ids)
    end = None if query.limit is None else query.offset + query.limit
    return len(selected), selected[query.offset:end]


def _select_in_sql(store: Store, query: RunQuery) -> tuple[int, list[TableRun]]:
    """The page when every filter and the sort can be done by the database: a few queries
    returning only the page's rows, whatever the number of runs."""
    f, sort = query.filter, query.sort
    with store.read() as conn:
        names = projects.names(conn)
        ids = _project_ids(names, f.project)
        liveness.reconcile(store, table.running_rows(conn, ids))
    with store.read() as conn:
        total, rows = table.page_rows(
            conn, project_ids=ids, study_id=f.study, text=f.text, statuses=f.statuses,
            field=sort.key if sort is not None and sort.kind == "field" else None,
            metric=(sort.key, sort.field) if sort is not None and sort.kind == "metric"
            else None,
            descending=query.descending, limit=query.limit, offset=query.offset)
    return total, [_table_run(row, names, set()) for row in rows]


# (store, scope, count and newest run of the scope) -> its config keys: configs come with
# new runs, so the keys change only when the scope does.
_CONFIG_KEYS: dict[tuple, list[str]] = {}


def _config_keys(store: Store, conn: Any, ids: list[int] | None,
                 study: str | None) -> list[str]:
    signature = (store.where, None if ids is None else tuple(ids), study,
                 *table.scope_signature(conn, ids, study))
    keys = _CONFIG_KEYS.get(signature)
    if keys is None:
        found: set[str] = set()
        for text in table.config_texts(conn, ids, study):
            found.update(_flat_config(text))
        keys = sorted(found)
        if len(_CONFIG_KEYS) > 64:
            _CONFIG_KEYS.clear()
        _CONFIG_KEYS[signature] = keys
    return keys


def sort_runs(store: Store, runs: list[TableRun], sort: Sort, descending: bool,
              project_ids: Sequence[int] | None = None) -> list[TableRun]:
    """``runs`` ordered by ``sort``; runs without the value come last either way."""
    if sort.kind == "field":
        def value(run: TableRun) -> Any:
            v = getattr(run, sort.key)
            return _MISSING if v is None else v
    elif sort.kind == "config":
        def value(run: TableRun) -> Any:
            return run.config.get(sort.key, _MISSING)
    else:
        with store.read() as conn:
            column = table.summary_column(conn, sort.key, sort.field, project_ids)

        def value(run: TableRun) -> Any:
            v = column.get(run.id)
            return _MISSING if v is None or (isinstance(v, float) and math.isnan(v)) else v
    keyed = [(value(r), r) for r in runs]
    present = [(order_key(v), r) for v, r in keyed if v is not _MISSING and v is not None]
    missing = [r for v, r in keyed if v is _MISSING or v is None]
    present.sort(key=lambda pair: pair[0], reverse=descending)
    return [r for _, r in present] + missing


def order_key(value: Any) -> tuple:
    """Numbers before text, each in its own order (bools as text: true/false)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, config_text(value) if not isinstance(value, list | dict)
            else repr(value))


def _holds(condition: Any, flat: Mapping[str, Any]) -> bool:
    """``KEY=VALUE`` on a flattened config: compared as text, numbers as numbers."""
    if condition.key not in flat:
        return False
    actual, wanted = flat[condition.key], condition.value
    if config_text(actual) == wanted:
        return True
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    try:
        return float(wanted) == float(actual)
    except ValueError:
        return False


class _Missing:
    pass


_MISSING = _Missing()


def _project_ids(names: Mapping[int, str], project: str | None) -> list[int] | None:
    """The ids of ``project`` (None: every project; [] for a project with no runs yet)."""
    if project is None:
        return None
    return [i for i, n in names.items() if n == project]


def check_project(store: Store, project: str | None) -> None:
    """Refuse a project no run was ever logged to, naming the projects there are (for
    callers that see every project: the Python API and the CLI)."""
    if project is None:
        return
    with store.read() as conn:
        names = projects.names(conn)
    if project not in names.values():
        known = ", ".join(sorted(names.values())) or "none yet"
        raise InvalidInputError(f"no project {project!r} (projects: {known})")


def _table_run(row: Any, names: Mapping[int, str], crashed: set[str]) -> TableRun:
    return TableRun(
        id=row.id, name=row.name, project=names[row.project_id],
        status="crashed" if row.id in crashed else row.status,
        created_at=row.created_at, started_at=row.started_at, ended_at=row.ended_at,
        heartbeat_at=row.heartbeat_at, tags=list(_parsed(row.tags_json) or []), seed=row.seed,
        study_id=row.study_id, config=_flat_config(row.config_json),
    )


# Parsed JSON by its text: runs share few distinct tag lists, and a run's config text never
# changes. Callers copy what they keep.
_PARSED: dict[str | None, Any] = {}
_FLAT: dict[str | None, dict[str, Any]] = {}
_CACHE_LIMIT = 200_000


def _parsed(text: str | None) -> Any:
    value = _PARSED.get(text, _MISSING)
    if value is _MISSING:
        value = json.loads(text) if text else None
        if len(_PARSED) >= _CACHE_LIMIT:
            _PARSED.clear()
        _PARSED[text] = value
    return value


def _flat_config(text: str | None) -> dict[str, Any]:
    flat = _FLAT.get(text)
    if flat is None:
        config = json.loads(text) if text else None
        flat = flatten(config) if isinstance(config, Mapping) else {}
        if len(_FLAT) >= _CACHE_LIMIT:
            _FLAT.clear()
        _FLAT[text] = flat
    return flat


