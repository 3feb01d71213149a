"""Runs grouped by config keys, with the mean and Student t interval of a metric across the
runs (usually seeds) of each group: "gru beats conv by more than seed noise?" at a glance."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tympan.errors import InvalidInputError
from tympan.records.query import RunFilter, split_metric_key
from tympan.records.table import TableRun, matching_runs, order_key
from tympan.store import Store, projects
from tympan.store import run_table as table

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
    members: list[GroupMember]
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
    if n == 0:
        return 0, None, None, None, None
    mean = math.fsum(finite) / n
    if n < 2:
        return n, mean, None, None, None
    from scipy.stats import t

    std = math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (n - 1))
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return n, mean, std, mean - half, mean + half


def group_runs(
    store: Store,
    filters: RunFilter,
    by: Sequence[str],
    metric: str | None = None,
    confidence: float = 0.95,
    descending: bool = False,
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
    selected = matching_runs(store, filters)
    column: dict[str, float | None] = {}
    if key is not None and summary is not None and selected:
        with store.read() as conn:
            ids = None
            if filters.project is not None:
                ids = [i for i, n in projects.names(conn).items() if n == filters.project]
            column = table.summary_column(conn, key, summary, ids)
    buckets: dict[tuple, RunGroup] = {}
    for run in sorted(selected, key=_member_order):
        values = {k: run.config.get(k) for k in by}
        ident = tuple(_hashable(v) for v in values.values())
        group = buckets.get(ident)
        if group is None:
            group = buckets[ident] = RunGroup(values=values, members=[])
        value = column.get(run.id)
        finite = value is not None and math.isfinite(value)
        group.members.append(GroupMember(run.id, run.name, run_seed(run), run.status,
                                         float(value) if finite else None))
    groups = list(buckets.values())
    for group in groups:
        if key is not None:
            (group.n, group.mean, group.std, group.low,
             group.high) = mean_interval([m.value for m in group.members], confidence)
    groups.sort(key=lambda g: tuple(_value_order(g.values[k]) for k in by))
    if key is not None:
        with_mean = [g for g in groups if g.mean is not None]
        with_mean.sort(key=lambda g: g.mean, reverse=descending)  # stable: ties by values
        groups = with_mean + [g for g in groups if g.mean is None]
    return RunGroups(by=by, metric=key, summary=summary, confidence=confidence,
                     total=len(selected), groups=groups)


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, default=repr)
    return (type(value).__name__, value)  # 1 and True and 1.0 are different config values


def run_seed(run: TableRun) -> int | None:
    """The seed the run recorded (``seed_everything``), else its config's ``seed``."""
    if run.seed is not None:
        return run.seed
    seed = run.config.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def _member_order(run: TableRun) -> tuple:
    seed = run_seed(run)
    return (seed is None, seed or 0, run.started_at, run.id)


def _value_order(value: Any) -> tuple:
    return (1,) if value is None else (0, *order_key(value))
