"""Runs grouped by config keys, with the mean and Student t interval of a metric across the
runs (usually seeds) of each group: "gru beats conv by more than seed noise?" at a glance."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tympan.errors import InvalidInputError
from tympan.records.query import RunFilter, split_metric_key
from tympan.records.resolve import resolve_filter
from tympan.records.scope import scope_keys
from tympan.records.table import ids_by_name, order_key
from tympan.store import Store, projects
from tympan.store import run_table as table
from tympan.store.run_groups import group_rows, member_order
from tympan.track import liveness

__all__ = ["GroupMember", "RunGroup", "RunGroups", "group_runs", "mean_interval"]

GROUP_SUMMARIES = ("last", "min", "max")


@dataclass(frozen=True)
class GroupMember:
    id: str
    name: str
    seed: int | None
    status: str
    value: float | None  # the metric value, None when missing or not finite


@dataclass
class RunGroup:
    values: dict[str, Any]  # config key -> the group's value (None: the runs lack the key)
    members: list[GroupMember]  # by seed; the first ``members`` of them if group_runs was asked
    size: int = 0  # runs in the group
    n: int = 0  # members with a finite metric value
    mean: float | None = None
    std: float | None = None  # sample standard deviation (n - 1)
    low: float | None = None  # Student t interval of the mean
    high: float | None = None


@dataclass
class RunGroups:
    by: list[str]
    metric: str | None
    summary: str | None
    confidence: float
    total: int  # runs grouped
    groups: list[RunGroup] = field(default_factory=list)


def mean_interval(values: Sequence[float], confidence: float = 0.95
                  ) -> tuple[int, float | None, float | None, float | None, float | None]:
    """(n, mean, std, low, high) of the finite values; the interval is Student t with n - 1
    degrees of freedom. std, low and high are None below 2 values, mean too at 0."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    mean = math.fsum(finite) / n if n else None
    squares = math.fsum((v - mean) ** 2 for v in finite) if mean is not None else None
    return _interval(n, mean, squares, confidence)


def _interval(n: int, mean: float | None, squares: float | None, confidence: float
              ) -> tuple[int, float | None, float | None, float | None, float | None]:
    """mean_interval's answer from n, the mean and the sum of squared deviations."""
    if n == 0 or mean is None:
        return 0, None, None, None, None
    if n < 2 or squares is None:
        return n, mean, None, None, None
    std = math.sqrt(max(squares, 0.0) / (n - 1))
    half = _t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return n, mean, std, mean - half, mean + half


@functools.lru_cache(maxsize=1024)
def _t_quantile(q: float, df: int) -> float:
    """Student t's quantile: the groups of a group-by mostly share a size, and scipy's ppf
    costs 0.1 ms a call (36 groups: 5 ms a request)."""
    from scipy.stats import t

    return float(t.ppf(q, df))


def group_runs(
    store: Store,
    filters: RunFilter,
    by: Sequence[str],
    metric: str | None = None,
    confidence: float = 0.95,
    descending: bool = False,
    members: int | None = None,
) -> RunGroups:
    """The runs matching ``filters`` grouped by the config keys ``by`` (see module docstring).

    ``metric`` is ``KEY`` or ``KEY.last|.min|.max``; groups come smallest mean first (largest
    with ``descending``), groups without a mean last; without a metric, by their values.
    """
    by = [k.strip() for k in by if k.strip()]
    if not by:
        raise InvalidInputError("group by which config keys? give by=KEY[,KEY...]")
    if not 0.5 <= confidence < 1:
        raise InvalidInputError(f"confidence must be in [0.5, 1), got {confidence}")
    key, summary = split_metric_key(metric.removeprefix("metric:")) if metric else (None, None)
    if summary is not None and summary not in GROUP_SUMMARIES:
        raise InvalidInputError(f"group on {metric!r}: the summary must be one of "
                                f"{', '.join(GROUP_SUMMARIES)}")
    with store.read() as conn:
        names = projects.names(conn)
        ids = None if filters.project is None else ids_by_name(names).get(filters.project, [])
        liveness.reconcile(store, table.running_rows(conn, ids))
    with store.read() as conn:
        keys = scope_keys(store, conn, ids, filters.study)
        tests = resolve_filter(filters, keys, ids_by_name(names))
        configs = [keys.name(k, f"group by {k!r}") for k in by] if ids != [] else []
        if any(kind != "config" for kind, _, _ in configs):
            bad = next(k for k, (kind, _, _) in zip(by, configs, strict=True)
                       if kind != "config")
            raise InvalidInputError(f"group by {bad!r}: {bad} is a metric; group by config "
                                    "keys and give the metric as metric=KEY")
        if key is not None and summary is not None and ids != []:
            key = keys.name(f"metric:{key}.{summary}", f"group on {metric!r}")[1]
        by = [name for _, name, _ in configs] or by
        rows = [] if ids == [] else group_rows(
            conn, by, project_ids=ids, study_id=filters.study, tests=tests,
            metric=(key, summary) if key is not None and summary is not None else None,
            members=members, more=store.read)
    groups = []
    for pool in _pools(rows, len(by)):
        group = RunGroup(values=dict(zip(by, pool.values, strict=True)),
                         members=[m for _, m in sorted(pool.members, key=lambda o: o[0])],
                         size=pool.size)
        if key is not None:
            (group.n, group.mean, group.std, group.low,
             group.high) = _interval(pool.n, pool.mean, pool.squares, confidence)
        if members is not None:
            del group.members[members:]
        groups.append(group)
    groups.sort(key=lambda g: tuple(_value_order(g.values[k]) for k in by))
    if key is not None:
        with_mean = [g for g in groups if g.mean is not None]
        with_mean.sort(key=lambda g: g.mean, reverse=descending)  # stable: ties by values
        groups = with_mean + [g for g in groups if g.mean is None]
    return RunGroups(by=by, metric=key, summary=summary, confidence=confidence,
                     total=sum(g.size for g in groups), groups=groups)


@dataclass
class _Pool:
    """A group as the database counted it, pooled with any whose values are equal in Python
    but spelled apart in JSON (1e-3 and 0.001): the database groups by the JSON text."""

    values: list[Any]
    size: int = 0
    n: int = 0
    mean: float | None = None
    squares: float | None = None  # sum of squared deviations from the mean
    members: list[tuple[tuple, GroupMember]] = field(default_factory=list)

    def add(self, size: int, n: int, mean: float | None, squares: float | None) -> None:
        """Pool another group's counts (Chan et al.'s update of the mean and squares)."""
        self.size += size
        if not n or mean is None:
            return
        if not self.n or self.mean is None:
            self.n, self.mean, self.squares = n, mean, squares
            return
        total = self.n + n
        delta = mean - self.mean
        self.squares = (self.squares or 0.0) + (squares or 0.0) + delta * delta * self.n * n / total
        self.mean += delta * n / total
        self.n = total


def _pools(rows: list[dict[str, Any]], width: int) -> list[_Pool]:
    """The groups of ``group_rows``' answer, keyed by their values as Python compares them."""
    pools: dict[tuple, _Pool] = {}
    for row in rows:
        values = json.loads(row["group"])[:width] if row["group"] else [None] * width
        pool = pools.setdefault(tuple(_hashable(v) for v in values), _Pool(values))
        pool.add(row["size"], row["n"], row["mean"], row["squares"])
        for member in row["members"]:
            value = member["value"]
            finite = value is not None and math.isfinite(value)
            pool.members.append((member_order(member), GroupMember(
                member["id"], member["name"], member["seed"], member["status"],
                float(value) if finite else None)))
    return list(pools.values())


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, default=repr)
    return (type(value).__name__, value)  # 1 and True and 1.0 are different config values


def _value_order(value: Any) -> tuple:
    return (1,) if value is None else (0, *order_key(value))
