"""Per-(run, key) summaries: last, min, max and counts, kept current on every flush."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tympan.store import statements

if TYPE_CHECKING:
    from sqlalchemy import Connection


@dataclass
class Summary:
    last: float | None = None
    last_step: int | None = None
    min: float | None = None
    min_step: int | None = None
    max: float | None = None
    max_step: int | None = None
    count: int = 0
    nan_count: int = 0
    inf_count: int = 0


def upsert(conn: Connection, run_id: str, changed: dict[str, Summary], now: float) -> None:
    upsert_many(conn, {run_id: changed}, now)


def upsert_many(conn: Connection, changed: Mapping[str, Mapping[str, Summary]],
                now: float) -> None:
    """The summaries of many runs (run id -> key -> summary) in one executemany."""
    from tympan.store.schema import run_summaries
    from tympan.store.upsert import insert_for

    rows = [{"run_id": run_id, "key": k, **asdict(s), "updated_at": now, "of_run": run_id}
            for run_id, keys in changed.items() for k, s in keys.items()]
    if not rows:
        return
    stmt = insert_for(conn, run_summaries).values(run_created=_created())
    updated = {c: stmt.excluded[c] for c in rows[0] if c not in ("run_id", "key", "of_run")}
    conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "key"], set_=updated), rows)


def _created() -> Any:
    """The summary's run's created_at, copied with the summary (a primary-key lookup): a
    group-by seeks each run's summary in the order the runs are scanned (revision 0012)."""
    from sqlalchemy import bindparam, select

    from tympan.store.schema import runs

    return select(runs.c.created_at).where(runs.c.id == bindparam("of_run")).scalar_subquery()


_FIELDS = tuple(Summary.__dataclass_fields__)


def for_runs(conn: Connection, run_ids: Sequence[str]) -> dict[str, dict[str, Summary]]:
    out: dict[str, dict[str, Summary]] = {r: {} for r in run_ids}
    for batch in _batches(run_ids, 500):
        for found in statements.rows(conn, _of_runs, run_ids=list(batch)):
            row = found._mapping
            summary = Summary(**{f: row[f] for f in _FIELDS})
            if summary.count and summary.last is None:
                summary.last = float("nan")  # SQLite stores NaN as NULL; count says it was set
            out[row["run_id"]][row["key"]] = summary
    return out


def _of_runs() -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import run_summaries

    return select(run_summaries).where(
        run_summaries.c.run_id.in_(bindparam("run_ids", expanding=True)))


def _batches(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
