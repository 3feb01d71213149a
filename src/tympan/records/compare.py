"""Comparing two stored runs: config, environment and metric summaries.

Pure functions of what is stored (two :class:`~tympan.records.record.RunRecord` and their
environment dicts, as ``capture_environment`` shapes them); ``tympan diff`` only renders the
:class:`RunDiff` they return. "A" is the first run, "B" the second; deltas are ``B - A``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tympan.config import flatten
from tympan.records.record import RunRecord
from tympan.store.summaries import Summary

__all__ = [
    "Change",
    "CommonStep",
    "ConfigDiff",
    "EnvironmentDiff",
    "MetricDiff",
    "MetricsDiff",
    "RunDiff",
    "RunsComparison",
    "StatChange",
    "compare_runs",
    "diff_config",
    "diff_environment",
    "diff_metrics",
    "diff_runs",
    "environment_facts",
]

SUMMARY_STATS = ("last", "min", "max")


@dataclass(frozen=True)
class Change:
    """One named value that differs: ``a`` in the first run, ``b`` in the second."""

    key: str
    a: Any
    b: Any


@dataclass(frozen=True)
class ConfigDiff:
    """Flattened (dotted) config keys that differ."""

    changed: list[Change] = field(default_factory=list)
    only_in_a: dict[str, Any] = field(default_factory=dict)
    only_in_b: dict[str, Any] = field(default_factory=dict)
    unchanged: int = 0

    @property
    def same(self) -> bool:
        return not (self.changed or self.only_in_a or self.only_in_b)


@dataclass(frozen=True)
class EnvironmentDiff:
    """Where the runs ran: facts (see :func:`environment_facts`) and package versions.

    ``added`` / ``removed`` are packages installed only for B / only for A.
    """

    recorded_a: bool
    recorded_b: bool
    changed: list[Change] = field(default_factory=list)
    packages_added: dict[str, str] = field(default_factory=dict)
    packages_removed: dict[str, str] = field(default_factory=dict)
    packages_changed: list[Change] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.changed or self.packages_added or self.packages_removed
                    or self.packages_changed)


@dataclass(frozen=True)
class StatChange:
    """One summary statistic in both runs; ``delta = b - a``, ``relative = delta / |a|``.

    ``delta`` is None when either value is missing or not finite; ``relative`` also when
    ``a`` is 0.
    """

    a: float | None
    b: float | None
    delta: float | None
    relative: float | None


@dataclass(frozen=True)
class MetricDiff:
    key: str
    last: StatChange
    min: StatChange
    max: StatChange


@dataclass(frozen=True)
class MetricsDiff:
    both: list[MetricDiff] = field(default_factory=list)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunDiff:
    a_id: str
    a_name: str
    b_id: str
    b_name: str
    config: ConfigDiff
    environment: EnvironmentDiff
    metrics: MetricsDiff


def diff_runs(
    a: RunRecord,
    b: RunRecord,
    env_a: Mapping[str, Any] | None,
    env_b: Mapping[str, Any] | None,
) -> RunDiff:
    """Everything that differs between runs ``a`` and ``b`` (environments as stored)."""
    return RunDiff(
        a_id=a.id,
        a_name=a.name,
        b_id=b.id,
        b_name=b.name,
        config=diff_config(a.config or {}, b.config or {}),
        environment=diff_environment(env_a, env_b),
        metrics=diff_metrics(a.summary, b.summary),
    )


# --- config ------------------------------------------------------------------------------


def diff_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> ConfigDiff:
    flat_a, flat_b = flatten(a), flatten(b)
    changed = [
        Change(key, flat_a[key], flat_b[key])
        for key in sorted(flat_a.keys() & flat_b.keys())
        if not _same_value(flat_a[key], flat_b[key])
    ]
    return ConfigDiff(
        changed=changed,
        only_in_a={k: flat_a[k] for k in sorted(flat_a.keys() - flat_b.keys())},
        only_in_b={k: flat_b[k] for k in sorted(flat_b.keys() - flat_a.keys())},
        unchanged=len(flat_a.keys() & flat_b.keys()) - len(changed),
    )


def _same_value(a: Any, b: Any) -> bool:
    # True == 1 in Python, but a flag turned into a count is a change worth showing.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


# --- environment -------------------------------------------------------------------------


def environment_facts(env: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of an environment dict worth showing and comparing, by dotted name.

    Keys: git.commit, git.branch, git.dirty, git.diff_lines, git.untracked, python.version,
    os, cpu, gpu (list of names), command.argv. A fact that was not captured is None.
    """
    git = env.get("git") or {}
    python = env.get("python") or {}
    system = env.get("os") or {}
    cpu = env.get("cpu") or {}
    gpus = env.get("gpu")
    command = env.get("command") or {}
    diff = git.get("diff")
    untracked = git.get("untracked")
    os_parts = [system.get(k) for k in ("system", "release", "machine")]
    cpu_text = cpu.get("model")
    if cpu.get("count"):
        cpu_text = f"{cpu_text or 'unknown CPU'} x{cpu['count']}"
    return {
        "git.commit": git.get("commit"),
        "git.branch": git.get("branch"),
        "git.dirty": git.get("dirty"),
        "git.diff_lines": len(diff.splitlines()) if isinstance(diff, str) else None,
        "git.untracked": len(untracked) if isinstance(untracked, list) else None,
        "python.version": python.get("version"),
        "os": " ".join(p for p in os_parts if p) or None,
        "cpu": cpu_text,
        "gpu": None if gpus is None else [g.get("name") for g in gpus if isinstance(g, dict)],
        "command.argv": command.get("argv"),
    }


def diff_environment(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> EnvironmentDiff:
    """Differences between two environment dicts; a missing one compares as empty."""
    facts_a, facts_b = environment_facts(a or {}), environment_facts(b or {})
    changed = [Change(k, facts_a[k], facts_b[k]) for k in facts_a if facts_a[k] != facts_b[k]]
    packages_a = (a or {}).get("packages") or {}
    packages_b = (b or {}).get("packages") or {}
    return EnvironmentDiff(
        recorded_a=a is not None,
        recorded_b=b is not None,
        changed=changed,
        packages_added={k: packages_b[k] for k in sorted(packages_b.keys() - packages_a.keys())},
        packages_removed={k: packages_a[k] for k in sorted(packages_a.keys() - packages_b.keys())},
        packages_changed=[
            Change(k, packages_a[k], packages_b[k])
            for k in sorted(packages_a.keys() & packages_b.keys())
            if packages_a[k] != packages_b[k]
        ],
    )


# --- metrics -----------------------------------------------------------------------------


def diff_metrics(a: Mapping[str, Summary], b: Mapping[str, Summary]) -> MetricsDiff:
    both = [
        MetricDiff(key, **{s: _stat(getattr(a[key], s), getattr(b[key], s))
                           for s in SUMMARY_STATS})
        for key in sorted(a.keys() & b.keys())
    ]
    return MetricsDiff(
        both=both,
        only_in_a=sorted(a.keys() - b.keys()),
        only_in_b=sorted(b.keys() - a.keys()),
    )


def _stat(a: float | None, b: float | None) -> StatChange:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return StatChange(a, b, None, None)
    delta = b - a
    relative = delta / abs(a) if a != 0 else None
    return StatChange(a, b, delta, relative)


# --- N runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommonStep:
    """A (key, step) of audio, images or tables that several of the compared runs logged."""

    key: str
    step: int
    in_all: bool
    samples: list[int | None]  # the item's id per compared run, in their order


@dataclass
class RunsComparison:
    """N runs side by side: what their metrics share, where their configs differ, and which
    audio samples can be played (and images and tables seen) against each other."""

    runs: list[Any]  # TableRun, in the order asked
    shared_metrics: list[str]
    all_metrics: list[str]
    config_keys: list[str]  # flattened keys whose value differs between some runs
    config_values: dict[str, list[Any]]  # key -> value per run (None where missing)
    config_same: int  # keys every run has, with one value
    audio: list[CommonStep]
    images: list[CommonStep]
    tables: list[CommonStep]


def compare_runs(store: Any, run_ids: list[str], project: str | None = None) -> RunsComparison:
    """Compare the runs with these exact ids (``project``: they must all belong to it; a run
    of another project is reported as not found)."""
    from tympan.errors import RunNotFoundError
    from tympan.records.table import runs_by_id
    from tympan.store import media, run_table
    from tympan.store.summaries import for_runs

    found = runs_by_id(store, run_ids)
    for run_id in run_ids:
        run = found.get(run_id)
        if run is None or (project is not None and run.project != project):
            raise RunNotFoundError(f"no run with id {run_id!r}")
    runs = [found[i] for i in run_ids]
    with store.read() as conn:
        summaries = for_runs(conn, run_ids)
        audio = _common(run_table.audio_index(conn, run_ids), run_ids)
        images = _common(media.index(conn, run_ids, "image"), run_ids)
        tables = _common(media.index(conn, run_ids, "table"), run_ids)
    for run in runs:
        run.metrics = summaries[run.id]
    metric_sets = [set(r.metrics) for r in runs]
    configs = [r.config for r in runs]
    all_keys = sorted(set().union(*configs))
    differing, same = [], 0
    for key in all_keys:
        values = [c.get(key, _ABSENT) for c in configs]
        if all(v is not _ABSENT for v in values) and all(_same_value(values[0], v)
                                                         for v in values[1:]):
            same += 1
        else:
            differing.append(key)
    return RunsComparison(
        runs=runs,
        shared_metrics=sorted(set.intersection(*metric_sets)) if metric_sets else [],
        all_metrics=sorted(set().union(*metric_sets)),
        config_keys=differing,
        config_values={k: [c.get(k) for c in configs] for k in differing},
        config_same=same,
        audio=audio,
        images=images,
        tables=tables,
    )


def _common(index: list[Any], run_ids: list[str]) -> list[CommonStep]:
    """The (key, step)s of an index of (run_id, key, step, id) rows that two or more runs
    have, with each run's first item there."""
    position = {run_id: i for i, run_id in enumerate(run_ids)}
    cells: dict[tuple[str, int], list[int | None]] = {}
    for run_id, key, step, item_id in index:
        row = cells.setdefault((key, int(step)), [None] * len(run_ids))
        if row[position[run_id]] is None:
            row[position[run_id]] = int(item_id)
    return [CommonStep(key, step, all(s is not None for s in row), row)
            for (key, step), row in sorted(cells.items())
            if sum(s is not None for s in row) >= 2]


_ABSENT = object()
