"""Runs grouped by config keys, in SQL: each group's counts and sums of a metric and its first
members in member order (seed, missing last, then started_at and id).

One statement answers both for a stretch of the runs table. The scope's runs are read once
with their group (the keys' values as one JSON text) and metric value (a materialized CTE); a
GROUP BY counts and sums them, and a window ranks each group's members, of which the first
``members`` come back, then their names. Two passes cost less than one window computing the
ranks and the whole-partition sums together: 0.51 s of SQLite's CPU at 100,000 runs, against
0.72 s.

SQLite runs a statement on one core, and that CPU goes to the JSON of each config, the summary
seeks and the sorts. A large scope is therefore read in stretches of rowids on parallel
connections (``sqlite3`` lets go of the GIL while a statement runs) and the answers merged:
counts and sums add, and a group's first members are the first of its stretches' first
members. PostgreSQL plans its own parallel scans.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from tympan.store.run_where import RunTest

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["group_rows", "member_order"]

RUNS_PER_PART = 12_500  # fewer runs than this per stretch cost more in threads than they save
WORKERS = min(4, os.cpu_count() or 1)  # stretches read at once

Opener = Callable[[], AbstractContextManager[Any]]


def group_rows(
    conn: Connection,
    by: Sequence[str],
    *,
    project_ids: Sequence[int] | None = None,
    study_id: str | None = None,
    tests: Sequence[RunTest] = (),
    metric: tuple[str, str] | None = None,
    members: int | None = None,
    more: Opener | None = None,
) -> list[dict[str, Any]]:
    """The runs passing ``tests`` grouped by the config keys ``by``: one dict per group with
    ``group`` (JSON text of a list starting with the values of ``by``, null where runs lack
    one), ``size`` (runs), ``n`` (finite values of the summary ``metric`` = (key,
    last|min|max)), ``mean``, ``squares`` (the sum of squared deviations from the mean) and
    ``members``: its first ``members`` runs (all with None) in member order, each a dict of
    id, name, status, seed (recorded, else the config's integer ``seed``), started_at and
    ``value`` (the metric, None when missing or not finite).

    ``more`` opens another read connection to the same SQLite store: given, a large scope is
    read in stretches on parallel connections (see the module docstring)."""
    from sqlalchemy import func, select

    from tympan.store.run_where import finite
    from tympan.store.schema import run_summaries

    dialect = conn.dialect.name
    shift = 0.0
    if metric is not None:
        value = finite(run_summaries.c[metric[1]])
        # sums of differences from a value among the metric's (an index lookup) keep the
        # squares' precision when values are large next to their spread
        shift = conn.execute(select(func.min(value)).where(
            run_summaries.c.key == metric[0], value.is_not(None))).scalar() or 0.0
    ask = dict(by=tuple(by), project_ids=project_ids, study_id=study_id, tests=tuple(tests),
               metric=metric, members=members, shift=shift)
    stretches = _stretches(conn, project_ids, study_id) if dialect == "sqlite" and more else []
    if len(stretches) < 2:
        return _named(conn, _merged([_part(conn, None, **ask)], shift, members))

    def elsewhere(stretch: tuple[int, int]) -> list[Any]:
        assert more is not None
        with more() as other:
            return _part(other, stretch, **ask)

    with ThreadPoolExecutor(len(stretches) - 1, thread_name_prefix="tympan-groups") as pool:
        others = [pool.submit(elsewhere, s) for s in stretches[1:]]
        parts = [_part(conn, stretches[0], **ask)] + [f.result() for f in others]
    return _named(conn, _merged(parts, shift, members))


def _stretches(conn: Connection, project_ids: Sequence[int] | None, study_id: str | None
               ) -> list[tuple[int, int]]:
    """Rowid ranges splitting the scope's runs into WORKERS stretches of equal width, or []
    when the scope is too small to be worth it."""
    from sqlalchemy import func, literal_column, select

    from tympan.store.run_table import _filtered
    from tympan.store.schema import runs

    rowid = literal_column("runs.rowid")
    count, low, high = conn.execute(_filtered(
        select(func.count(), func.min(rowid), func.max(rowid)).select_from(runs),
        project_ids, study_id)).one()
    parts = min(WORKERS, count // RUNS_PER_PART)
    if parts < 2:
        return []
    edges = [low + (high - low + 1) * k // parts for k in range(parts)] + [high + 1]
    return [(edges[k], edges[k + 1] - 1) for k in range(parts)]


def _part(conn: Any, stretch: tuple[int, int] | None, *, by: tuple[str, ...],
          project_ids: Sequence[int] | None, study_id: str | None, tests: tuple[RunTest, ...],
          metric: tuple[str, str] | None, members: int | None, shift: float) -> list[Any]:
    """The rows of one statement over ``stretch`` (rowids, inclusive; None: all): the first
    ``members`` of each group (``rank`` set), then each group's counts (``rank`` None)."""
    from sqlalchemy import Float, Integer, cast, func, literal_column, null, select, union_all

    from tympan.store.run_table import _filtered
    from tympan.store.run_where import RunOrder, config_array, config_integer, finite, metric_join
    from tympan.store.schema import run_summaries, runs

    dialect = conn.dialect.name
    value = (finite(run_summaries.c[metric[1]]) if metric is not None
             else cast(null(), Float))
    stmt = _filtered(select(
        runs.c.id, func.coalesce(runs.c.seed, config_integer(dialect, "seed")).label("seed"),
        runs.c.started_at, config_array(dialect, by).label("group"), value.label("value"),
    ), project_ids, study_id, tests, dialect)
    if metric is not None:
        stmt = metric_join(stmt, RunOrder("metric", metric[0], metric[1]))
    if stretch is not None:
        stmt = stmt.where(literal_column("runs.rowid").between(*stretch))
    # each run's JSON parsed once: the CTE is read by both passes below
    run = stmt.cte("grouped").prefix_with("MATERIALIZED")
    rank = func.row_number().over(partition_by=run.c.group, order_by=[
        run.c.seed.is_(None), run.c.seed, run.c.started_at, run.c.id]).label("rank")
    ranked = select(run, rank).subquery()
    first = select(ranked.c.group, ranked.c.id, ranked.c.seed, ranked.c.started_at,
                   ranked.c.value, ranked.c.rank,
                   *[cast(null(), Integer)] * 2, *[cast(null(), Float)] * 2)
    if members is not None:
        first = first.where(ranked.c.rank <= members)
    shifted = run.c.value - shift
    counts = select(run.c.group, *[null()] * 4, cast(null(), Integer), func.count(),
                    func.count(run.c.value), func.sum(shifted),
                    func.sum(shifted * shifted)).group_by(run.c.group)
    return list(conn.execute(union_all(first, counts)))


def _merged(parts: list[list[Any]], shift: float, members: int | None
            ) -> list[dict[str, Any]]:
    """One answer from the parts' rows (see :func:`_part`), groups by their JSON text."""
    groups: dict[str | None, dict[str, Any]] = {}
    for rows in parts:
        for text, run_id, seed, started_at, value, rank, size, n, total, total2 in rows:
            group = groups.setdefault(text, {"group": text, "size": 0, "n": 0, "sum": 0.0,
                                             "sum2": 0.0, "members": []})
            if rank is None:
                group["size"] += size
                group["n"] += n
                group["sum"] += total or 0.0
                group["sum2"] += total2 or 0.0
            else:
                group["members"].append({"id": run_id, "seed": seed,
                                         "started_at": started_at, "value": value})
    for group in groups.values():
        group["members"].sort(key=member_order)  # UNION ALL keeps no order; parts rank apart
        if members is not None:
            del group["members"][members:]
        n, total, total2 = group["n"], group.pop("sum"), group.pop("sum2")
        group["mean"] = shift + total / n if n else None
        group["squares"] = max(0.0, total2 - total * total / n) if n else None
    return list(groups.values())


def _named(conn: Any, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``groups`` with their members' names and statuses, read for the listed members only:
    carried through the sorts of every run, they cost more (7% at 100,000 runs)."""
    from sqlalchemy import select

    from tympan.store.schema import runs

    listed = [m for g in groups for m in g["members"]]
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(listed), 500):
        ids = [m["id"] for m in listed[start:start + 500]]
        found.update((i, (name, status)) for i, name, status in conn.execute(
            select(runs.c.id, runs.c.name, runs.c.status).where(runs.c.id.in_(ids))))
    for group in groups:  # a run deleted since the group query is left out
        group["members"] = [m | dict(zip(("name", "status"), found[m["id"]], strict=True))
                            for m in group["members"] if m["id"] in found]
    return groups


def member_order(member: dict[str, Any]) -> tuple:
    """A member's place in its group (as the window orders them): by seed, missing last,
    then started_at and id."""
    seed = member["seed"]
    return (seed is None, seed or 0, member["started_at"], member["id"])
