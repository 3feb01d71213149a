"""Runs grouped by config keys, in SQL: each group's counts and sums of a metric and its first
members in member order (seed, missing last, then started_at and id).

Two statements answer it. The first reads the scope's runs with their group (the keys' values
as one JSON text) and metric value, and counts and sums them per group. The second lists each
group's first ``members`` runs. Ranking every run to find them was most of the work (a sort of
the whole scope by group, seed, start and id: 0.35 s of SQLite's CPU at 100,000 runs), so on
SQLite the second statement ranks only a prefix of the scope in member order: the first
``2 x members x groups`` runs, read from the member-order index (revision 0012; a bounded sort
where the index cannot serve, as for several projects). A group's first members are within any
prefix that holds ``members`` of its runs, or all of them; where a prefix falls short for some
group, a four times longer one is read, and past the scope's size, all of it.

SQLite runs a statement on one core, and the first statement's CPU (the JSON of every config,
a summary seek per run, the GROUP BY's sort) grows with the scope. A large scope is therefore
counted in stretches of equal size by creation time on parallel connections (``sqlite3`` lets
go of the GIL while a statement runs), the counts added up; each run's summary is sought by
(key, the run's created_at, its id), in the order the runs are scanned (revision 0012). The
members are listed from the start on one more connection, from a prefix guessed for 32 groups.
PostgreSQL reads its JSONB copy of the config and ranks a whole scope faster than it takes a
prefix (40 against 53 ms at 10,000 runs), so there the members come from the whole scope,
listed on another connection while it counts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from tympan.store.run_where import RunTest

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["group_rows", "member_order"]

RUNS_PER_PART = 5_000  # fewer runs than this per stretch cost more in threads than they save
WORKERS = min(4, os.cpu_count() or 1)  # stretches read at once
PREFIX_GROWTH = 4  # how much longer the next prefix is when one falls short
GUESSED_GROUPS = 32  # groups the members listed alongside the counts are read for
MEMBER = ("id", "name", "status", "seed", "started_at", "value")  # a listed member's fields

Opener = Callable[[], AbstractContextManager[Any]]
Stretch = tuple[float | None, float | None]  # runs created from (inclusive), to (exclusive)


@dataclass(frozen=True)
class _Ask:
    """What a group-by asks, as its statements need it."""

    by: tuple[str, ...]
    project_ids: Sequence[int] | None
    study_id: str | None
    tests: tuple[RunTest, ...]
    metric: tuple[str, str] | None


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

    ``more`` opens another read connection to the same store: given, a large scope's
    members are listed on one while it counts (on SQLite, in stretches on parallel
    connections; see the module docstring)."""
    ask = _Ask(tuple(by), project_ids, study_id, tuple(tests), metric)
    prefixed = members is not None and conn.dialect.name == "sqlite"  # PostgreSQL ranks a
    # whole scope faster than it takes a prefix
    guess = 2 * members * GUESSED_GROUPS if prefixed else None

    def elsewhere(read: Callable[[Any], Any]) -> Future:
        def on_its_own() -> Any:
            assert more is not None
            with more() as other:
                return read(other)

        return _pool().submit(on_its_own)

    # the members are listed from the start, on a connection of their own, while this one
    # finds the shift and the stretches and counts
    listing = None
    if more is not None and members != 0:
        listing = elsewhere(lambda c: _ranked(c, ask, members, guess))
    shift = _shift(conn, metric)
    stretches = _stretches(conn, project_ids, study_id) if more is not None else []
    counting = [elsewhere(lambda c, s=s: _counts(c, ask, shift, s)) for s in stretches[1:]]
    counted = [_counts(conn, ask, shift, stretches[0] if stretches else None)]
    counted += [f.result() for f in counting]
    tried = None if listing is None else (guess, listing.result())
    groups: dict[str | None, dict[str, Any]] = {}
    for rows in counted:
        for text, size, n, total, total2 in rows:
            _add(groups, text, size, n, total or 0.0, total2 or 0.0)
    if members != 0:
        _list_members(conn, ask, groups, members, prefixed, tried)
    for group in groups.values():
        n, total, total2 = group["n"], group.pop("sum"), group.pop("sum2")
        group["mean"] = shift + total / n if n else None
        group["squares"] = max(0.0, total2 - total * total / n) if n else None
    return list(groups.values())


@cache
def _pool() -> ThreadPoolExecutor:
    """The threads that run a group-by's statements beside its own, kept between requests
    (starting two a request cost 3 ms); a forked child makes its own."""
    return ThreadPoolExecutor(WORKERS, thread_name_prefix="tympan-groups")


os.register_at_fork(after_in_child=_pool.cache_clear)


def _shift(conn: Connection, metric: tuple[str, str] | None) -> float:
    """A value to subtract from the metric's before summing: any of its values (an index
    lookup) keeps the sums of squares precise when values are large next to their spread."""
    if metric is None:
        return 0.0
    from sqlalchemy import select

    from tympan.store.run_where import finite
    from tympan.store.schema import run_summaries

    value = finite(run_summaries.c[metric[1]])
    return conn.execute(select(value).where(run_summaries.c.key == metric[0],
                                            value.is_not(None)).limit(1)).scalar() or 0.0


def member_order(member: dict[str, Any]) -> tuple:
    """A member's place in its group: by seed, missing last, then started_at and id."""
    seed = member["seed"]
    return (seed is None, seed or 0, member["started_at"], member["id"])


def _add(groups: dict[str | None, dict[str, Any]], text: str | None, size: int = 0,
         n: int = 0, total: float = 0.0, total2: float = 0.0) -> dict[str, Any]:
    group = groups.setdefault(text, {"group": text, "size": 0, "n": 0, "sum": 0.0,
                                     "sum2": 0.0, "members": []})
    group["size"] += size
    group["n"] += n
    group["sum"] += total
    group["sum2"] += total2
    return group


def _list_members(conn: Any, ask: _Ask, groups: dict[str | None, dict[str, Any]],
                  members: int | None, prefixed: bool,
                  tried: tuple[int | None, list[Any]] | None) -> None:
    """Each group's first ``members`` runs (all with None) into its ``members`` list, ranked
    from a prefix of the scope if ``prefixed``, else from all of it; ``tried``: (prefix,
    rows) of a listing already made, to be checked first."""
    total = sum(g["size"] for g in groups.values())
    prefix = 2 * (members or 0) * max(1, len(groups)) if prefixed else None
    while True:
        if tried is not None:
            (tried_prefix, rows), tried = tried, None
        else:
            if prefix is not None and prefix >= total:
                prefix = None  # the whole scope: no bounded sort in front
            tried_prefix, rows = prefix, _ranked(conn, ask, members, prefix)
        listed: dict[str | None, list[dict[str, Any]]] = {}
        for text, *member in rows:
            listed.setdefault(text, []).append(dict(zip(MEMBER, member, strict=True)))
        if tried_prefix is None or all(
                len(listed.get(t, ())) >= min(g["size"], members or 0)
                for t, g in groups.items()):
            break
        prefix = max(tried_prefix * PREFIX_GROWTH, prefix or 0)
    for text, found in listed.items():  # a run added since the counts lists a group too
        _add(groups, text)["members"] = sorted(found, key=member_order)


def _stretches(conn: Connection, project_ids: Sequence[int] | None, study_id: str | None
               ) -> list[Stretch]:
    """Ranges of created_at splitting the scope into WORKERS stretches of equal size, or []
    when it is too small to be worth it (or not on SQLite: PostgreSQL splits a scan itself).
    The edges are read from the (project_id, created_at) index: the count, then one offset
    into it per edge; a stretch runs from its edge (inclusive) to the next (exclusive)."""
    from sqlalchemy import func, select

    from tympan.store.run_table import _filtered
    from tympan.store.schema import runs

    if conn.dialect.name != "sqlite":
        return []
    count = conn.execute(_filtered(select(func.count()).select_from(runs), project_ids,
                                   study_id)).scalar_one()
    parts = min(WORKERS, count // RUNS_PER_PART)
    if parts < 2:
        return []
    edges = [conn.execute(_filtered(select(runs.c.created_at), project_ids, study_id)
                          .order_by(runs.c.created_at).limit(1).offset(count * k // parts)
                          ).scalar_one() for k in range(1, parts)]
    return list(zip([None, *edges], [*edges, None], strict=True))


def _seed(dialect: str) -> Any:
    """A run's seed: the recorded one, else its config's integer ``seed``. On SQLite written
    as revision 0012's member-order index reads it (literal paths, no bound parameters), so
    a prefix in member order is read from that index instead of sorting the scope."""
    from sqlalchemy import Integer, func, literal_column

    from tympan.store.run_where import config_integer
    from tympan.store.schema import runs

    if dialect == "sqlite":
        return literal_column(_SQLITE_SEED, Integer)
    return func.coalesce(runs.c.seed, config_integer(dialect, "seed"))


_SQLITE_SEED = ("coalesce(runs.seed, CASE WHEN (json_type(runs.config, '$.\"seed\"') = "
                "'integer') THEN json_extract(runs.config, '$.\"seed\"') END)")


def _scoped(dialect: str, ask: _Ask, stmt: Any) -> Any:
    """``stmt`` (selecting from runs) limited to the scope's runs that pass the tests."""
    from tympan.store.run_table import _filtered

    return _filtered(stmt, ask.project_ids, ask.study_id, ask.tests, dialect)


def _grouped(dialect: str, ask: _Ask, *columns: Any) -> Any:
    """The scope's runs with ``columns``, their group and their metric value."""
    from sqlalchemy import Float, cast, null, select

    from tympan.store.run_where import config_array, finite
    from tympan.store.schema import runs

    group = config_array(dialect, ask.by).label("group")
    if ask.metric is None:
        return _scoped(dialect, ask, select(*columns, group,
                                            cast(null(), Float).label("value")))
    key, summary = ask.metric
    summaries = _summary_values()
    # sought by (key, the run's created_at, its id): in the order runs are scanned (0012)
    on = ((summaries.c.key == key) & (summaries.c.run_created == runs.c.created_at)
          & (summaries.c.run_id == runs.c.id))
    return _scoped(dialect, ask, select(
        *columns, group, finite(summaries.c[summary]).label("value")).select_from(
        runs.outerjoin(summaries, on)))


@cache
def _summary_values() -> Any:
    """run_summaries, read on SQLite through the index that holds its values in the order runs
    are scanned (key, run_created, run_id, last, min, max; revision 0012): without statistics
    SQLite seeks the primary key, then the row, for every run. (Made on first use: a store
    module imports SQLAlchemy only when it reads through it.)"""
    from sqlalchemy.ext.compiler import compiles
    from sqlalchemy.sql.selectable import Alias

    from tympan.store.schema import run_summaries

    class IndexedBy(Alias):
        inherit_cache = True

    @compiles(IndexedBy, "sqlite")
    def indexed_by(element: IndexedBy, compiler: Any, **kw: Any) -> str:
        text = compiler.visit_alias(element, **kw)
        return f"{text} INDEXED BY ix_run_summaries_created" if kw.get("asfrom") else text

    return IndexedBy._construct(run_summaries, name="run_summaries")


def _counts(conn: Any, ask: _Ask, shift: float, stretch: Stretch | None) -> list[Any]:
    """(group, size, n, sum, sum of squares) of the values minus ``shift``, per group of the
    runs in ``stretch`` (None: all)."""
    from sqlalchemy import func, select

    from tympan.store.schema import runs

    stmt = _grouped(conn.dialect.name, ask)
    if stretch is not None:
        low, high = stretch
        if low is not None:
            stmt = stmt.where(runs.c.created_at >= low)
        if high is not None:
            stmt = stmt.where(runs.c.created_at < high)
    if conn.dialect.name == "sqlite":
        # a subquery with a LIMIT is not flattened into the GROUP BY: each run's value is
        # computed once, not once per sum that reads it (12% of the statement's CPU)
        stmt = stmt.limit(-1)
    run = stmt.subquery()
    shifted = run.c.value - shift
    return list(conn.execute(select(
        run.c.group, func.count(), func.count(run.c.value), func.sum(shifted),
        func.sum(shifted * shifted)).group_by(run.c.group)))


def _ranked(conn: Any, ask: _Ask, members: int | None, prefix: int | None) -> list[Any]:
    """(group, id, name, status, seed, started_at, value) of each group's first ``members``
    runs (all with None) among the scope's first ``prefix`` runs in member order (all with
    None)."""
    from sqlalchemy import func, literal_column, select

    from tympan.store.schema import runs

    dialect = conn.dialect.name
    seed = _seed(dialect)
    stmt = _grouped(dialect, ask, runs.c.id, runs.c.name, runs.c.status, seed.label("seed"),
                    runs.c.started_at)
    if prefix is not None:  # SQLite: the prefix's rowids from the member-order index (or a
        # bounded sort over the row's columns), then only their rows read whole
        rowid = literal_column("runs.rowid")
        first = _scoped(dialect, ask, select(rowid.label("first"))).order_by(
            seed.is_(None), seed, runs.c.started_at, runs.c.id).limit(prefix).subquery()
        stmt = stmt.join(first, first.c.first == rowid)
    run = stmt.subquery()
    rank = func.row_number().over(partition_by=run.c.group, order_by=[
        run.c.seed.is_(None), run.c.seed, run.c.started_at, run.c.id]).label("rank")
    ranked = select(run, rank).subquery()
    listed = select(ranked.c.group, ranked.c.id, ranked.c.name, ranked.c.status,
                    ranked.c.seed, ranked.c.started_at, ranked.c.value)
    if members is not None:
        listed = listed.where(ranked.c.rank <= members)
    return list(conn.execute(listed))
