"""The runs table: runs filtered, sorted and paged, fast enough for stores of 10,000 runs.

``query_runs`` reads the table columns of every run in scope in one query, filters and sorts
them in memory, and reads metric summaries only for the sort key (one query) and for the page
it returns (one more). ``group_runs`` (see groups.py) works from the same filtered rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tympan.config import config_text
from tympan.errors import InvalidInputError
from tympan.store import Store, projects
from tympan.store import run_table as table
from tympan.store.schema import RUN_STATUSES
from tympan.store.summaries import Summary, for_runs
from tympan.track import liveness
from tympan.track.lookup import SUMMARY_FIELDS, config_matches, flatten, split_metric_sort

__all__ = ["RUN_FIELDS_SORTABLE", "RunFilter", "RunPage", "Sort", "TableRun", "matching_runs",
           "parse_sort", "parse_where", "query_runs", "runs_by_id"]

RUN_FIELDS_SORTABLE = ("started_at", "created_at", "ended_at", "duration", "name", "status",
                       "id")


@dataclass(frozen=True)
class RunFilter:
    """Which runs: all of these must hold (empty means no condition)."""

    project: str | None = None
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    where: tuple[tuple[str, str], ...] = ()  # (dotted config key, value as text)
    text: str | None = None  # substring of the name (any case) or of the id
    study: str | None = None  # study id

    def __post_init__(self) -> None:
        for s in self.statuses:
            if s not in RUN_STATUSES:
                raise InvalidInputError(
                    f"unknown status {s!r}: use one of {', '.join(RUN_STATUSES)}")


@dataclass(frozen=True)
class Sort:
    """``kind`` "field" (a run field), "config" (a config key) or "metric" (a summary)."""

    kind: str
    key: str
    field: str = "last"  # for metrics: last, min, max or count


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
    limit: int
    runs: list[TableRun]
    config_keys: list[str]  # every config key among the runs in scope (project, study)
    metric_keys: list[str]


def parse_where(items: Iterable[str]) -> dict[str, str]:
    """``["model.encoder=gru", "lr=0.001"]`` -> ``{"model.encoder": "gru", "lr": "0.001"}``."""
    filters: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(
                f"--where {item!r} is not KEY=VALUE: write e.g. --where model.encoder=gru"
            )
        filters[key.strip()] = value
    return filters


def parse_sort(text: str) -> Sort:
    """``started_at`` | ``config:KEY`` | ``metric:KEY[.last|.min|.max|.count]`` | ``KEY``
    (a bare key that is no run field is a metric, as ``tympan runs --sort`` takes it)."""
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in ("config", "metric"):
        if not rest:
            raise InvalidInputError(f"sort {text!r} names no key: write e.g. {kind}:KEY")
        if kind == "config":
            return Sort("config", rest)
        key, field_name = split_metric_sort(rest)
        return Sort("metric", key, field_name)
    if not text:
        raise InvalidInputError("sort is empty: give a run field, config:KEY or metric:KEY")
    if text in RUN_FIELDS_SORTABLE:
        return Sort("field", text)
    key, field_name = split_metric_sort(text)
    return Sort("metric", key, field_name)


def matching_runs(store: Store, filters: RunFilter) -> tuple[list[TableRun], list[TableRun]]:
    """(the runs matching every filter, every run in scope of the project and study filters),
    newest first; a dead 'running' run shows (and is stored) as crashed."""
    with store.read() as conn:
        names = projects.names(conn)
        project_ids = _project_ids(names, filters.project)
        rows = [] if project_ids == [] else table.table_rows(
            conn, project_ids=project_ids, study_id=filters.study)
    crashed = liveness.reconcile(store, [r for r in rows if r.status == "running"])
    scope = [_table_run(row, names, crashed) for row in rows]
    wanted = set(filters.statuses)
    tags = set(filters.tags)
    where = dict(filters.where)
    text = (filters.text or "").lower()
    selected = [
        r for r in scope
        if (not wanted or r.status in wanted)
        and (not tags or tags <= set(r.tags))
        and (not where or config_matches(r.config, where))
        and (not text or text in r.name.lower() or text in r.id)
    ]
    return selected, scope


def runs_by_id(store: Store, run_ids: Sequence[str]) -> dict[str, TableRun]:
    """The table rows of the runs with these exact ids (missing ones are left out)."""
    with store.read() as conn:
        names = projects.names(conn)
        rows = table.table_rows(conn, run_ids=list(run_ids))
    crashed = liveness.reconcile(store, [r for r in rows if r.status == "running"])
    return {row.id: _table_run(row, names, crashed) for row in rows}


def query_runs(
    store: Store,
    filters: RunFilter = RunFilter(),
    sort: Sort | None = None,
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> RunPage:
    """One page of the runs table (see the module docstring)."""
    if limit < 1 or offset < 0:
        raise InvalidInputError(f"limit must be >= 1 and offset >= 0, got {limit} and {offset}")
    if sort is not None and sort.kind == "metric" and sort.field not in SUMMARY_FIELDS:
        raise InvalidInputError(f"unknown summary {sort.field!r}: use one of "
                                f"{', '.join(SUMMARY_FIELDS)}")
    if not filters.tags and not filters.where and (sort is None or sort.kind != "config"):
        return _page_in_sql(store, filters, sort, descending, limit, offset)
    selected, scope = matching_runs(store, filters)
    scope_ids = _scope_project_ids(store, filters.project)
    if sort is not None:
        selected = sort_runs(store, selected, sort, descending, scope_ids)
    page = selected[offset : offset + limit]
    with store.read() as conn:
        summaries = for_runs(conn, [r.id for r in page])
        metric_keys = [] if scope_ids == [] else table.metric_keys(conn, scope_ids)
    for run in page:
        run.metrics = summaries[run.id]
    if filters.study is not None:  # keys of the study's runs only
        metric_keys = _metric_keys_of(store, [r.id for r in scope])
    return RunPage(total=len(selected), offset=offset, limit=limit, runs=page,
                   config_keys=config_keys(scope), metric_keys=metric_keys)


def _page_in_sql(store: Store, filters: RunFilter, sort: Sort | None, descending: bool,
                 limit: int, offset: int) -> RunPage:
    """The page when every filter and the sort can be done by the database: a few queries
    returning only the page's rows, whatever the number of runs."""
    with store.read() as conn:
        names = projects.names(conn)
        ids = _project_ids(names, filters.project)
        if ids == []:
            return RunPage(0, offset, limit, [], [], [])
        liveness.reconcile(store, table.running_rows(conn, ids))
    with store.read() as conn:
        total, rows = table.page_rows(
            conn, project_ids=ids, study_id=filters.study, text=filters.text,
            statuses=filters.statuses,
            field=sort.key if sort is not None and sort.kind == "field" else None,
            metric=(sort.key, sort.field) if sort is not None and sort.kind == "metric"
            else None,
            descending=descending, limit=limit, offset=offset)
        page = [_table_run(row, names, set()) for row in rows]
        summaries = for_runs(conn, [r.id for r in page])
        signature = (store.where, tuple(ids or ()), filters.study,
                     *table.scope_signature(conn, ids, filters.study))
        keys = _CONFIG_KEYS.get(signature)
        if keys is None:
            keys = config_keys_of(
                _flat_config(t) for t in table.config_texts(conn, ids, filters.study))
            if len(_CONFIG_KEYS) > 64:
                _CONFIG_KEYS.clear()
            _CONFIG_KEYS[signature] = keys
        if filters.study is None:
            metric_keys = table.metric_keys(conn, ids)
        else:
            study_ids = [r.id for r in table.table_rows(conn, project_ids=ids,
                                                        study_id=filters.study)]
            metric_keys = sorted({k for s in for_runs(conn, study_ids).values() for k in s})
    for run in page:
        run.metrics = summaries[run.id]
    return RunPage(total, offset, limit, page, keys, metric_keys)


# (store, scope, count and newest run of the scope) -> its config keys: configs come with
# new runs, so the keys change only when the scope does.
_CONFIG_KEYS: dict[tuple, list[str]] = {}


def config_keys_of(flat_configs: Iterable[Mapping[str, Any]]) -> list[str]:
    keys: set[str] = set()
    for flat in flat_configs:
        keys.update(flat)
    return sorted(keys)


def config_keys(runs: Iterable[TableRun]) -> list[str]:
    keys: set[str] = set()
    for run in runs:
        keys.update(run.config)
    return sorted(keys)


def sort_runs(store: Store, runs: list[TableRun], sort: Sort, descending: bool,
              project_ids: Sequence[int] | None = None) -> list[TableRun]:
    """``runs`` ordered by ``sort``; runs without the value come last either way."""
    if sort.kind == "field":
        value = _field_value(sort.key)
    elif sort.kind == "config":
        def value(run: TableRun) -> Any:
            return run.config.get(sort.key, _MISSING)
    else:
        if sort.field not in SUMMARY_FIELDS:
            raise InvalidInputError(f"unknown summary {sort.field!r}: use one of "
                                    f"{', '.join(SUMMARY_FIELDS)}")
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


class _Missing:
    pass


_MISSING = _Missing()


def _field_value(name: str):
    def value(run: TableRun) -> Any:
        v = getattr(run, name)
        return _MISSING if v is None else v
    return value


def _project_ids(names: Mapping[int, str], project: str | None) -> list[int] | None:
    if project is None:
        return None
    return [i for i, n in names.items() if n == project]


def _scope_project_ids(store: Store, project: str | None) -> list[int] | None:
    if project is None:
        return None
    with store.read() as conn:
        return _project_ids(projects.names(conn), project)


def _metric_keys_of(store: Store, run_ids: Sequence[str]) -> list[str]:
    with store.read() as conn:
        return sorted({k for s in for_runs(conn, run_ids).values() for k in s})


def _table_run(row: Any, names: Mapping[int, str], crashed: set[str]) -> TableRun:
    return TableRun(
        id=row.id, name=row.name, project=names[row.project_id],
        status="crashed" if row.id in crashed else row.status,
        created_at=row.created_at, started_at=row.started_at, ended_at=row.ended_at,
        heartbeat_at=row.heartbeat_at, tags=list(_parsed(row.tags_json) or []), seed=row.seed,
        study_id=row.study_id, config=_flat_config(row.config_json),
    )


# Parsed JSON by its text: runs share few distinct tag lists, and a run's config text never
# changes, so re-reading a 10,000-run table parses almost nothing. Callers copy what they keep.
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
