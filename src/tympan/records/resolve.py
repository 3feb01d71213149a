"""What the keys of a query name, decided against the runs in scope: a run field, a config
key or a metric summary; the query's filter and sort turned into the store's SQL tests
(``tympan.store.run_where``), with the values each kind of key takes checked.

A bare key is a run field first (status, name, id, project, study, seed, started_at,
created_at, ended_at, duration, tags, text), then a config key of a run in scope, then a metric
(``KEY``, ``KEY.last``, ``KEY.min``, ``KEY.max``, ``KEY.count``); ``config:KEY`` and
``metric:KEY`` say which outright. A key none of them has is an error that suggests the
nearest keys there are, so a typo never reads as "no runs match".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence

from tympan.errors import InvalidInputError
from tympan.records.language import Condition
from tympan.records.query import SUMMARY_FIELDS, RunFilter, Sort, split_metric_key
from tympan.store.run_where import ORDERED, RunOrder, RunTest, as_number
from tympan.store.runs import RUN_STATUSES

__all__ = ["FIELDS", "ScopeKeys", "resolve_filter", "resolve_sort"]

# run field as the language names it -> (runs column, is it a number)
FIELDS: dict[str, tuple[str, bool]] = {
    "status": ("status", False), "name": ("name", False), "id": ("id", False),
    "project": ("project_id", False), "study": ("study_id", False),
    "seed": ("seed", True), "started_at": ("started_at", True),
    "created_at": ("created_at", True), "ended_at": ("ended_at", True),
    "duration": ("duration", True),
}
_EQUALITY = ("=", "!=", "in", "not in")


class ScopeKeys:
    """The config and metric keys of the runs in scope, each read on first use."""

    def __init__(self, config: Callable[[], Sequence[str]],
                 metrics: Callable[[], Sequence[str]]) -> None:
        self._config_source, self._metric_source = config, metrics
        self._config: set[str] | None = None
        self._metrics: set[str] | None = None

    @property
    def config(self) -> set[str]:
        if self._config is None:
            self._config = set(self._config_source())
        return self._config

    @property
    def metrics(self) -> set[str]:
        if self._metrics is None:
            self._metrics = set(self._metric_source())
        return self._metrics

    def name(self, key: str, where: str) -> tuple[str, str, str]:
        """("config", KEY, "") or ("metric", KEY, SUMMARY) for a key that is no run field."""
        prefix, sep, rest = key.partition(":")
        if sep and prefix in ("config", "metric"):
            if not rest:
                raise InvalidInputError(f"{where}: {key!r} names no key")
            if prefix == "config":
                if rest in self.config or self._empty():
                    return "config", rest, ""
                raise self._unknown(rest, where, self.config)
            return self._metric(rest, where) or self._raise_unknown(rest, where, self.metrics)
        if key in self.config:
            return "config", key, ""
        found = self._metric(key, where)
        if found is not None:
            return found
        if self._empty():
            return "config", key, ""  # nothing in scope to check against: matches nothing
        raise self._unknown(key, where, self.config | self.metrics | set(FIELDS) | {"tags"})

    def _metric(self, key: str, where: str) -> tuple[str, str, str] | None:
        base, summary = split_metric_key(key)
        if base in self.metrics:
            return "metric", base, summary
        if key in self.metrics:
            return "metric", key, "last"
        return None

    def _empty(self) -> bool:
        return not self.config and not self.metrics

    def _raise_unknown(self, key: str, where: str, known: set[str]) -> tuple[str, str, str]:
        if self._empty():
            return "metric", *split_metric_key(key)
        raise self._unknown(key, where, known)

    @staticmethod
    def _unknown(key: str, where: str, known: set[str]) -> InvalidInputError:
        base = split_metric_key(key)[0]
        close = difflib.get_close_matches(key, sorted(known), n=4, cutoff=0.6) or \
            difflib.get_close_matches(base, sorted(known), n=4, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else \
            "no run in scope has it"
        return InvalidInputError(f"{where}: unknown key {key!r}: {hint} (keys are run "
                                 "fields, config keys and metrics: see docs/query.md)")


def resolve_filter(filters: RunFilter, keys: ScopeKeys,
                   project_ids: Mapping[str, list[int]]) -> list[RunTest]:
    """The store tests of every condition of ``filters`` (statuses, tags, text, where)."""
    tests: list[RunTest] = []
    if filters.archived != "include":
        tests.append(RunTest("archived", "", filters.archived, ()))
    if filters.statuses:
        tests.append(RunTest("column", "status", "in", tuple(filters.statuses)))
    tests += [RunTest("tags", "", "has", (tag,)) for tag in filters.tags]
    if filters.text:
        tests.append(RunTest("text", "", "~", (filters.text,)))
    tests += [resolve_condition(c, keys, project_ids) for c in filters.where]
    return tests


def resolve_condition(condition: Condition, keys: ScopeKeys,
                      project_ids: Mapping[str, list[int]]) -> RunTest:
    where = f"where {str(condition)!r}"
    key, op, values = condition.key, condition.op, condition.values
    if op in ("has", "not has"):
        return RunTest("tags", "", op, values)
    if key == "text":
        if op != "~":
            raise InvalidInputError(f"{where}: text is searched with ~ (text ~ WORD)")
        return RunTest("text", "", "~", values)
    if key in FIELDS:
        return _field_test(key, op, values, where, project_ids)
    kind, name, summary = keys.name(key, where)
    if kind == "metric":
        if op in ("~", "!~"):
            raise InvalidInputError(f"{where}: {key} is a metric: compare it with "
                                    "= != < <= > >= or in")
        return RunTest("metric", name, op, _numbers(values, where, key), summary)
    if op in ORDERED and any(as_number(v) is None for v in values):
        raise InvalidInputError(f"{where}: {op} compares numbers; {key} = VALUE or "
                                f"{key} ~ TEXT tests text")
    return RunTest("config", name, op, values)


def _field_test(key: str, op: str, values: tuple[str, ...], where: str,
                project_ids: Mapping[str, list[int]]) -> RunTest:
    column, numeric = FIELDS[key]
    if numeric:
        if op in ("~", "!~"):
            raise InvalidInputError(f"{where}: {key} is a number: compare it with "
                                    "= != < <= > >= or in")
        return RunTest("column", column, op, _numbers(values, where, key))
    if op in ORDERED:
        raise InvalidInputError(f"{where}: {key} is text: test it with = != in or ~")
    if key == "status" and op in _EQUALITY:
        unknown = [v for v in values if v not in RUN_STATUSES]
        if unknown:
            raise InvalidInputError(f"{where}: unknown status {unknown[0]!r}: use one of "
                                    f"{', '.join(RUN_STATUSES)}")
    if key == "project":
        if op not in _EQUALITY:
            raise InvalidInputError(f"{where}: a project is tested with = != or in")
        ids = tuple(i for v in values for i in project_ids.get(v, []))
        negated = op in ("!=", "not in")
        if not ids:  # no such project: nothing is in it
            return RunTest("column", "id", "in" if not negated else "not in", ())
        return RunTest("column", column, "not in" if negated else "in", ids)
    return RunTest("column", column, op, values)


def _numbers(values: tuple[str, ...], where: str, key: str) -> tuple[float, ...]:
    numbers = tuple(as_number(v) for v in values)
    if any(n is None for n in numbers):
        raise InvalidInputError(f"{where}: {key} takes numbers, got "
                                f"{', '.join(repr(v) for v in values)}")
    return numbers  # type: ignore[return-value]


def resolve_sort(sort: Sort | None, descending: bool, keys: ScopeKeys) -> RunOrder | None:
    """The store order of ``sort`` (None: newest first)."""
    if sort is None:
        return None
    where = f"sort {str(sort)!r}"
    if sort.kind == "field":
        return RunOrder("column", FIELDS.get(sort.key, (sort.key, False))[0],
                        descending=descending)
    if sort.kind == "config":
        kind, name, summary = keys.name(f"config:{sort.key}", where)
    elif sort.kind == "metric":
        kind, name, summary = keys.name(f"metric:{sort.key}.{sort.field}", where)
    else:
        kind, name, summary = keys.name(sort.key, where)
    if kind == "metric" and summary not in SUMMARY_FIELDS:
        raise InvalidInputError(f"{where}: use one of {', '.join(SUMMARY_FIELDS)}")
    return RunOrder(kind, name, summary or "last", descending)
