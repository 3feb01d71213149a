"""SQL for tests on runs and orders of runs: a run column, a value in the config JSON (by its
dotted path), a metric summary, a tag, a text search.

``tympan.records.query`` says what a user asked for, in their words; this module turns a
resolved test into a WHERE clause and an order into ORDER BY terms that SQLite and PostgreSQL
evaluate themselves, so a filter over 100,000 runs sends back only the page it shows.

Config values keep their JSON type: ``lr >= 1e-3`` holds for numbers only, ``encoder = gru``
for the string "gru", ``flag = true`` for the boolean, ``seed = 3`` for the number 3 (and for
the string "3"). A run that lacks a key or a metric matches no test on it, negations included.
NaN summaries count as missing on both databases (SQLite stores them as NULL).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement


OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "~", "!~", "in", "not in", "has", "not has")
ORDERED = ("<", "<=", ">", ">=")
STRING_COLUMNS = ("id", "name", "status", "study_id", "project_id")
NUMBER_COLUMNS = ("started_at", "created_at", "ended_at", "seed", "duration")
SUMMARY_FIELDS = ("last", "min", "max", "count")


@dataclass(frozen=True)
class RunTest:
    """One test on a run, resolved: ``kind`` is "column" (a run column, see STRING_COLUMNS and
    NUMBER_COLUMNS), "config" (``key`` a dotted config key), "metric" (``key`` a metric,
    ``summary`` last|min|max|count), "tags" (op has / not has) or "text" (op ~: a substring
    of the name, any case, or of the id) or "archived" (op hide: runs not archived; only:
    archived runs). ``values`` are text for config, string columns,
    tags and text; numbers for metrics and number columns."""

    kind: str
    key: str
    op: str
    values: tuple[Any, ...]
    summary: str = "last"


@dataclass(frozen=True)
class RunOrder:
    """Runs in order of a column, a config value or a metric summary (``kind`` as in
    RunTest); runs without the value come last either way."""

    kind: str
    key: str
    summary: str = "last"
    descending: bool = False


def condition(dialect: str, test: RunTest) -> ColumnElement[bool]:
    """The WHERE clause of ``test`` on ``runs``."""
    from sqlalchemy import and_, func, not_, or_

    from tympan.store.schema import runs

    if test.op not in OPERATORS and test.kind != "archived":
        raise ValueError(f"unknown operator {test.op!r}")
    if test.kind == "config":
        return _config_test(_ConfigValue(dialect, test.key), test.op, test.values)
    if test.kind == "metric":
        return _metric_test(dialect, test)
    if test.kind == "tags":
        found = [_has_tag(dialect, str(v)) for v in test.values]
        return and_(*found) if test.op == "has" else and_(*[not_(f) for f in found])
    if test.kind == "text":
        text = str(test.values[0]).lower()
        return or_(func.lower(runs.c.name).contains(text, autoescape=True),
                   runs.c.id.contains(text, autoescape=True))
    if test.kind == "column":
        return _column_test(column_value(test.key, dialect), test)
    if test.kind == "archived":  # op "hide": not archived; "only": archived
        return runs.c.archived_at.is_(None) if test.op == "hide" else \
            runs.c.archived_at.is_not(None)
    raise ValueError(f"unknown test kind {test.kind!r}")


def order_terms(dialect: str, order: RunOrder) -> list[Any]:
    """ORDER BY terms for ``order`` by a column or a config value (a metric order walks the
    summary index instead: ``run_table.page_rows``)."""
    from sqlalchemy import case

    from tympan.store.schema import runs

    desc = order.descending

    def direction(term: Any) -> Any:
        return term.desc() if desc else term.asc()

    if order.kind == "config":
        value = _ConfigValue(dialect, order.key)
        return [case((value.present, 0), else_=1).asc(),
                direction(case((value.is_number, 0), else_=1)),
                direction(value.number), direction(value.text), runs.c.id]
    if order.kind == "column":
        return [direction(column_value(order.key, dialect)).nulls_last(), runs.c.id]
    raise ValueError(f"unknown order kind {order.kind!r}")


def metric_join(stmt: Any, order: RunOrder) -> Any:
    """``stmt`` (selecting from runs) outer-joined to the summary ``order`` names."""
    from tympan.store.schema import run_summaries, runs

    return stmt.outerjoin(run_summaries, (run_summaries.c.run_id == runs.c.id)
                          & (run_summaries.c.key == order.key))


def column_value(name: str, dialect: str = "sqlite") -> Any:
    """A run column; ``duration`` is computed, and ``seed`` is the seed the run recorded
    (``seed_everything``), else its config's ``seed``."""
    from sqlalchemy import func

    from tympan.store.schema import runs

    if name == "duration":
        return func.coalesce(runs.c.ended_at, runs.c.heartbeat_at) - runs.c.started_at
    if name == "seed":
        return func.coalesce(runs.c.seed, _ConfigValue(dialect, "seed").number)
    return runs.c[name]


def config_array(dialect: str, keys: Sequence[str]) -> Any:
    """The JSON text of a list starting with the values of config ``keys`` (null where a run
    lacks one), parsing each run's config once: ``json.loads`` gives the typed values back."""
    from sqlalchemy import ARRAY, Text, cast, func, literal

    from tympan.store.schema import runs

    if dialect == "sqlite":
        paths = [literal(_sqlite_path(k)) for k in keys]
        # one path gives a bare SQL value (true as 1); two or more give a JSON array
        return func.json_extract(runs.c.config, *(paths * 2 if len(paths) == 1 else paths))
    document = config_jsonb()
    return cast(func.jsonb_build_array(*[
        document.op("#>")(literal(k.split("."), ARRAY(Text))) for k in keys]), Text)


@functools.cache
def config_jsonb() -> Any:
    """PostgreSQL's JSONB copy of ``runs.config`` (a generated column, revision 0010): read
    without parsing each run's JSON text again on every request. Not a column of the shared
    ``runs`` table, which SQLite stores lack."""
    from sqlalchemy import literal_column
    from sqlalchemy.dialects.postgresql import JSONB  # here: SQLite commands skip its import

    return literal_column("runs.config_jsonb", JSONB)


def config_integer(dialect: str, key: str) -> Any:
    """Config ``key``'s value where it is a whole number (JSON 3, not 3.0, "3" or true)."""
    return _ConfigValue(dialect, key).integer


def finite(value: Any) -> Any:
    """``value`` where it is a finite number, else NULL (SQLite keeps NaN as NULL already;
    PostgreSQL's NaN compares above every number)."""
    from sqlalchemy import case

    return case((value.between(-_LARGEST, _LARGEST), value))


_LARGEST = 1.7976931348623157e308


def _sqlite_path(key: str) -> str:
    return "$" + "".join('."' + p.replace('"', '""') + '"' for p in key.split("."))


class _ConfigValue:
    """The SQL expressions of one config key's value: its JSON type, its number, its text."""

    def __init__(self, dialect: str, key: str) -> None:
        from sqlalchemy import BigInteger, Float, and_, case, cast, func, literal

        from tympan.store.schema import runs

        parts = key.split(".")
        config = runs.c.config
        if dialect == "sqlite":
            path = literal(_sqlite_path(key))
            self.type = func.json_type(config, path)
            self.raw = func.json_extract(config, path)
            self.is_number = self.type.in_(("integer", "real"))
            self.is_string = self.type == "text"
            self.text = case((self.is_string, self.raw))
            self.number = case((self.is_number, self.raw))
            self.integer = case((self.type == "integer", self.raw))
            self._true, self._false = self.type == "true", self.type == "false"
        else:
            names = [literal(p) for p in parts]
            document = config_jsonb()
            self.type = func.jsonb_typeof(func.jsonb_extract_path(document, *names))
            self.raw = func.jsonb_extract_path_text(document, *names)
            self.is_number = self.type == "number"
            self.is_string = self.type == "string"
            self.text = case((self.is_string, self.raw))
            self.number = case((self.is_number, cast(self.raw, Float)))
            # JSONB writes numbers as numerics do (1e3 as 1000): Python's json never writes
            # a whole number with an exponent, but a float from 1e16 up reads as whole here
            whole = and_(self.is_number, self.raw.op("~")(r"^-?[0-9]+$"))
            self.integer = case((whole, cast(self.raw, BigInteger)))
            self._true = and_(self.type == "boolean", self.raw == "true")
            self._false = and_(self.type == "boolean", self.raw == "false")
        self.present = and_(self.type.is_not(None), self.type != "null")

    def equals(self, value: str) -> ColumnElement[bool]:
        from sqlalchemy import and_, or_

        options = [and_(self.is_string, self.raw == value)]
        if value == "true":
            options.append(self._true)
        elif value == "false":
            options.append(self._false)
        number = as_number(value)
        if number is not None:
            options.append(and_(self.is_number, self.number == number))
        return or_(*options)


def _config_test(value: _ConfigValue, op: str, values: tuple[Any, ...]) -> ColumnElement[bool]:
    from sqlalchemy import and_, func, not_, or_

    if op in ORDERED:
        return and_(value.is_number, _compare(value.number, op, float(values[0])))
    if op in ("=", "in"):
        return or_(*[value.equals(str(v)) for v in values])
    if op in ("!=", "not in"):
        return and_(value.present, not_(or_(*[value.equals(str(v)) for v in values])))
    contains = and_(value.is_string,
                    func.lower(value.raw).contains(str(values[0]).lower(), autoescape=True))
    return contains if op == "~" else and_(value.present, not_(contains))


def _metric_test(dialect: str, test: RunTest) -> ColumnElement[bool]:
    """The runs whose summary passes: ``runs.id IN`` the run ids of a range of the key's
    summary index (0009), not one summary lookup per run."""
    from sqlalchemy import and_, not_, or_, select

    from tympan.store.schema import run_summaries, runs

    if test.summary not in SUMMARY_FIELDS:
        raise ValueError(f"unknown summary field {test.summary!r}")
    summaries = run_summaries.alias()  # not the summary a metric sort joins
    value = summaries.c[test.summary]
    present = summary_present(dialect, test.summary, summaries)
    if test.op in ("in", "not in"):
        held = or_(*[value == float(v) for v in test.values])
        held = held if test.op == "in" else and_(present, not_(held))
    else:
        held = and_(present, _compare(value, test.op, float(test.values[0])))
    return runs.c.id.in_(select(summaries.c.run_id).where(summaries.c.key == test.key, held))


def summary_present(dialect: str, summary: str, table: Any = None) -> ColumnElement[bool]:
    """The summary field is a number: not NULL (SQLite's NaN) nor NaN (PostgreSQL's, which
    compares above every number), written so that the key's summary index still serves.
    ``table`` is run_summaries (the default) or an alias of it."""
    from sqlalchemy import Float, and_, literal

    from tympan.store.schema import run_summaries

    value = (run_summaries if table is None else table).c[summary]
    if dialect == "postgresql" and summary != "count":
        return and_(value.is_not(None), value != literal(float("nan"), Float))
    return value.is_not(None)


def _column_test(column: Any, test: RunTest) -> ColumnElement[bool]:
    from sqlalchemy import and_, func, not_

    if test.op == "in":
        return column.in_(list(test.values))
    if test.op == "not in":
        return and_(column.is_not(None), column.not_in(list(test.values)))
    if test.op in ("~", "!~"):
        contains = func.lower(column).contains(str(test.values[0]).lower(), autoescape=True)
        return contains if test.op == "~" else not_(contains)
    if test.op == "!=":
        return and_(column.is_not(None), column != test.values[0])
    return _compare(column, test.op, test.values[0])


def _compare(left: Any, op: str, right: Any) -> ColumnElement[bool]:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    raise ValueError(f"operator {op!r} does not compare")


def _has_tag(dialect: str, tag: str) -> ColumnElement[bool]:
    from sqlalchemy import func, literal, select

    from tympan.store.schema import runs

    if dialect == "sqlite":
        elements = func.json_each(runs.c.tags).table_valued("value")
    else:
        elements = func.json_array_elements_text(runs.c.tags).table_valued("value")
    return select(literal(1)).select_from(elements).where(elements.c.value == tag).exists()


def as_number(text: str) -> float | None:
    """``text`` as a finite number, or None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


__all__ = ["NUMBER_COLUMNS", "OPERATORS", "ORDERED", "STRING_COLUMNS", "RunOrder", "RunTest",
           "as_number", "column_value", "condition", "config_array", "config_integer",
           "config_jsonb", "finite",
           "metric_join", "order_terms", "summary_present"]
