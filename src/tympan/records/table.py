"""Running a :class:`~tympan.records.query.RunQuery` against a store: the runs table's page
(:func:`query_runs`, rows of :class:`TableRun`), the same runs as full records
(:func:`find_runs`), and the rows of runs named by id (:func:`runs_by_id`).

Every filter and sort runs in SQL (``tympan.store.run_where``, once ``tympan.records.resolve``
has said what each key names) and only the page comes back, whatever the number of runs. The
keys a query is checked against come from ``tympan.records.scope``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tympan.config import config_text
from tympan.errors import InvalidInputError
from tympan.records.query import RunQuery
from tympan.records.record import RunRecord, record_of
from tympan.records.resolve import ScopeKeys, resolve_filter, resolve_sort
from tympan.records.scope import flat_config, scope_keys
from tympan.store import Store, projects, runs
from tympan.store import run_table as table
from tympan.store.summaries import Summary, for_runs
from tympan.track import liveness

__all__ = ["RunPage", "TableRun", "check_project", "find_runs", "ids_by_name", "order_key",
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
    parent_id: str | None = None  # the run it is a child of (a `tympan probe` job's run)
    archived_at: float | None = None
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
    total, page, keys = _select(store, query)
    with store.reader() as conn:
        summaries = for_runs(conn, [r.id for r in page])
    for run in page:
        run.metrics = summaries[run.id]
    return RunPage(total, query.offset, query.limit, page, sorted(keys.config),
                   sorted(keys.metrics))


def find_runs(store: Store, query: RunQuery, check: bool = True) -> list[RunRecord]:
    """The runs ``query`` selects, in its order, as full records with their summaries; an
    unknown project is refused (see :func:`check_project`) unless ``check`` is False (a
    project-bound token's server, where the message would name other projects)."""
    if check:
        check_project(store, query.filter.project)
    _, page, _ = _select(store, query)
    ids = [r.id for r in page]
    with store.reader() as conn:
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
    with store.reader() as conn:
        names = projects.names(conn)
        rows = table.table_rows(conn, run_ids=list(run_ids))
    crashed = liveness.reconcile(store, [r for r in rows if r.status == "running"])
    return {row.id: _table_run(row, names, crashed) for row in rows}


def _select(store: Store, query: RunQuery) -> tuple[int, list[TableRun], ScopeKeys]:
    """(how many runs match, the page of them in order, the scope's keys), without
    summaries: a few queries returning only the page's rows, whatever the number of runs."""
    f = query.filter
    with store.reader() as conn:
        names = projects.names(conn)
        ids = _project_ids(names, f.project)
        liveness.reconcile(store, table.running_rows(conn, ids))
    with store.reader() as conn:
        keys = scope_keys(store, conn, ids, f.study)
        tests = resolve_filter(f, keys, ids_by_name(names))
        order = resolve_sort(query.sort, query.descending, keys)
        total, rows = table.page_rows(conn, project_ids=ids, study_id=f.study, tests=tests,
                                      order=order, limit=query.limit, offset=query.offset)
        keys.config, keys.metrics  # noqa: B018 - read while the connection is open
    return total, [_table_run(row, names, set()) for row in rows], keys


def ids_by_name(names: Mapping[int, str]) -> dict[str, list[int]]:
    """Project name -> its ids (one, unless names repeat)."""
    out: dict[str, list[int]] = {}
    for i, name in names.items():
        out.setdefault(name, []).append(i)
    return out


def order_key(value: Any) -> tuple:
    """Numbers before text, each in its own order (bools as text: true/false)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, config_text(value) if not isinstance(value, list | dict)
            else repr(value))


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
    with store.reader() as conn:
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
        study_id=row.study_id, config=flat_config(row.config_json), parent_id=row.parent_id,
        archived_at=row.archived_at,
    )


# Parsed tag lists by their JSON text: runs share few distinct ones. Callers copy what they
# keep.
_PARSED: dict[str | None, Any] = {}
_CACHE_LIMIT = 200_000


def _parsed(text: str | None) -> Any:
    value = _PARSED.get(text, _MISSING)
    if value is _MISSING:
        value = json.loads(text) if text else None
        if len(_PARSED) >= _CACHE_LIMIT:
            _PARSED.clear()
        _PARSED[text] = value
    return value
