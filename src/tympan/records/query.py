"""The run query: which runs (:class:`RunFilter`), in which order (:class:`Sort`), which page.

A query is a plain value. It is parsed once, from Python keywords (``tympan.find_runs``), CLI
options (``tympan runs``) or the query parameters of ``GET /api/runs``, and it turns back into
those parameters (:meth:`RunQuery.params`), so the same query means the same runs whether a
local store or a team server answers it. Running it is ``tympan.records.table``'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from tympan.errors import InvalidInputError
from tympan.records.language import Condition, parse_where
from tympan.store.runs import RUN_STATUSES

__all__ = ["ARCHIVED", "FILTER_PARAMS", "RUN_FIELDS_SORTABLE", "RUN_STATUSES", "SUMMARY_FIELDS",
           "Condition", "RunFilter", "RunQuery", "Sort", "parse_sort", "parse_where",
           "split_metric_key"]

ARCHIVED = ("hide", "include", "only")
RUN_FIELDS_SORTABLE = ("started_at", "created_at", "ended_at", "duration", "name", "status",
                       "id")
SUMMARY_FIELDS = ("last", "min", "max", "count")


@dataclass(frozen=True)
class RunFilter:
    """Which runs: all of these must hold (empty means no condition)."""

    project: str | None = None
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # runs with every one of these tags
    where: tuple[Condition, ...] = ()  # the query language's clauses (records.language)
    text: str | None = None  # substring of the name (any case) or of the id
    study: str | None = None  # study id
    archived: str = "hide"  # archived runs: hide, include or only

    def __post_init__(self) -> None:
        if self.archived not in ARCHIVED:
            raise InvalidInputError(f"archived={self.archived!r}: use one of "
                                    f"{', '.join(ARCHIVED)}")
        for s in self.statuses:
            if s not in RUN_STATUSES:
                raise InvalidInputError(
                    f"unknown status {s!r}: use one of {', '.join(RUN_STATUSES)}")


@dataclass(frozen=True)
class Sort:
    """``kind`` "field" (a run field), "config" (a config key), "metric" (a summary) or "key"
    (a bare key: a config key or a metric, whichever the store has; see records.resolve)."""

    kind: str
    key: str
    field: str = "last"  # for metrics: last, min, max or count

    def __post_init__(self) -> None:
        if self.kind == "metric" and self.field not in SUMMARY_FIELDS:
            raise InvalidInputError(f"unknown summary {self.field!r}: use one of "
                                    f"{', '.join(SUMMARY_FIELDS)}")

    def __str__(self) -> str:
        if self.kind == "field":
            return self.key
        if self.kind == "config":
            return f"config:{self.key}"
        if self.kind == "key":
            return self.key
        return f"metric:{self.key}.{self.field}"


@dataclass(frozen=True)
class RunQuery:
    """A filter, a sort and a page: everything that says which runs come back, in order."""

    filter: RunFilter = field(default_factory=RunFilter)
    sort: Sort | None = None  # None: newest first
    descending: bool = False
    limit: int | None = None  # None: every run
    offset: int = 0

    def __post_init__(self) -> None:
        if (self.limit is not None and self.limit < 1) or self.offset < 0:
            raise InvalidInputError(
                f"limit must be >= 1 and offset >= 0, got {self.limit} and {self.offset}")

    def page(self, limit: int | None, offset: int = 0) -> RunQuery:
        return replace(self, limit=limit, offset=offset)

    def params(self) -> list[tuple[str, str]]:
        """The query as ``GET /api/runs`` parameters (what :meth:`from_params` reads)."""
        f = self.filter
        out: list[tuple[str, str]] = []
        if f.project is not None:
            out.append(("project", f.project))
        out += [("status", s) for s in f.statuses]
        out += [("tag", t) for t in f.tags]
        out += [("where", str(c)) for c in f.where]
        if f.text:
            out.append(("q", f.text))
        if f.study is not None:
            out.append(("study", f.study))
        if f.archived != "hide":
            out.append(("archived", f.archived))
        if self.sort is not None:
            out.append(("sort", str(self.sort)))
        if self.descending:
            out.append(("desc", "true"))
        if self.limit is not None:
            out.append(("limit", str(self.limit)))
        if self.offset:
            out.append(("offset", str(self.offset)))
        return out

    @classmethod
    def from_params(cls, items: Iterable[tuple[str, str]]) -> RunQuery:
        """A query from ``GET /api/runs`` parameters; repeated values of status and tag
        add up (statuses may also be comma-separated: tags may hold commas); an unknown
        parameter is refused, naming the known ones."""
        values: dict[str, list[str]] = {}
        for name, value in items:
            if name not in _PARAMS:
                raise InvalidInputError(f"unknown query parameter {name!r}: use "
                                        f"{', '.join(_PARAMS)}")
            values.setdefault(name, []).append(value)

        def one(name: str) -> str | None:
            got = [v.strip() for v in values.get(name, []) if v.strip()]
            return got[-1] if got else None

        def listed(name: str) -> tuple[str, ...]:
            return tuple(part.strip() for v in values.get(name, []) for part in v.split(",")
                         if part.strip())

        sort = one("sort")
        return cls(
            filter=RunFilter(
                project=one("project"), statuses=listed("status"),
                tags=tuple(t for t in values.get("tag", []) if t.strip()),
                where=tuple(c for w in values.get("where", []) for c in parse_where(w)),
                text=one("q"), study=one("study"), archived=one("archived") or "hide"),
            sort=parse_sort(sort) if sort else None,
            descending=_flag(one("desc") or "false"),
            limit=_int("limit", one("limit")),
            offset=_int("offset", one("offset")) or 0,
        )

    @classmethod
    def from_options(
        cls,
        *,
        project: str | None = None,
        status: Sequence[str] | str | None = None,
        tags: Sequence[str] | str = (),
        where: Mapping[str, object] | Sequence[str] | str | None = None,
        text: str | None = None,
        study: str | None = None,
        archived: str = "hide",
        sort: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> RunQuery:
        """A query from ``tympan.find_runs``' keywords: ``where`` is a mapping of dotted
        config key to value, or the query language's text (``"encoder in (conv, gru)"``,
        one string or several that must all hold)."""
        if isinstance(where, Mapping):
            conditions = tuple(Condition(f"config:{k}", "=", (_text(v),))
                               for k, v in where.items())
        else:
            texts = [where] if isinstance(where, str) else list(where or [])
            conditions = tuple(c for text in texts for c in parse_where(text))
        return cls(
            filter=RunFilter(
                project=project,
                statuses=(status,) if isinstance(status, str) else tuple(status or ()),
                tags=(tags,) if isinstance(tags, str) else tuple(tags),
                where=conditions, text=text or None, study=study, archived=archived),
            sort=parse_sort(sort) if sort else None,
            descending=descending, limit=limit, offset=offset,
        )


FILTER_PARAMS = ("project", "status", "tag", "where", "q", "study", "archived")
_PARAMS = (*FILTER_PARAMS, "sort", "desc", "limit", "offset")


def split_metric_key(spec: str) -> tuple[str, str]:
    """``loss.min`` -> ``("loss", "min")``; ``val.loss`` -> ``("val.loss", "last")``."""
    key, _, field_name = spec.rpartition(".")
    if field_name in SUMMARY_FIELDS and key:
        return key, field_name
    return spec, "last"


def parse_sort(text: str) -> Sort:
    """``started_at`` | ``config:KEY`` | ``metric:KEY[.last|.min|.max|.count]`` | ``KEY``
    (a bare key that is no run field: a config key or a metric, resolved against the
    store's keys when the query runs)."""
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in ("config", "metric"):
        if not rest:
            raise InvalidInputError(f"sort {text!r} names no key: write e.g. {kind}:KEY")
        if kind == "config":
            return Sort("config", rest)
        return Sort("metric", *split_metric_key(rest))
    if not text:
        raise InvalidInputError("sort is empty: give a run field, config:KEY or metric:KEY")
    if text in RUN_FIELDS_SORTABLE:
        return Sort("field", text)
    return Sort("key", text)


def _text(value: object) -> str:
    from tympan.config import config_text

    return config_text(value)


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidInputError(f"desc={text!r} is not true or false")


def _int(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInputError(f"{name}={text!r} is not a whole number") from None
