"""Run records: identity, status, config, tags, liveness."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tympan.store import statements

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row


RUN_STATUSES = ("running", "finished", "failed", "crashed")
_BATCH = 500  # ids per IN (...)


def insert(conn: Connection, **fields: Any) -> None:
    from tympan.store.schema import runs

    conn.execute(runs.insert().values(**fields))


def insert_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Many runs in one executemany (imports and benchmarks); each row has insert's fields."""
    from tympan.store.schema import runs

    if rows:
        conn.execute(runs.insert(), list(rows))


def get(conn: Connection, run_id: str) -> Row | None:
    return statements.first(conn, _by_id, run_id=run_id)


def _by_id() -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import runs

    return select(runs).where(runs.c.id == bindparam("run_id"))


def by_ids(conn: Connection, run_ids: Sequence[str]) -> list[Row]:
    """The rows of the runs with these ids (missing ones left out), in no particular order."""
    ids = list(run_ids)
    return [row for i in range(0, len(ids), _BATCH)
            for row in statements.rows(conn, _by_ids, run_ids=ids[i:i + _BATCH])]


def _by_ids() -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import runs

    return select(runs).where(runs.c.id.in_(bindparam("run_ids", expanding=True)))


def ids_with_prefix(conn: Connection, prefix: str, limit: int = 5,
                    project_id: int | None = None) -> list[str]:
    """Ids starting with ``prefix`` (of one project's runs when ``project_id`` is given)."""
    # Run ids are [0-9a-z]: no LIKE wildcards can sneak in through a validated prefix.
    return statements.scalars(conn, _ids_like, limit, project_id is not None,
                              pattern=f"{prefix}%", **_project(project_id))


def _ids_like(limit: int, in_project: bool) -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import runs

    stmt = select(runs.c.id).where(runs.c.id.like(bindparam("pattern")))
    if in_project:
        stmt = stmt.where(runs.c.project_id == bindparam("project_id"))
    return stmt.order_by(runs.c.id).limit(limit)


def ids_named(conn: Connection, name: str, limit: int = 5,
              project_id: int | None = None) -> list[str]:
    """Ids of the runs named ``name``, newest first (of one project's when given)."""
    return statements.scalars(conn, _ids_named, limit, project_id is not None, name=name,
                              **_project(project_id))


def _ids_named(limit: int, in_project: bool) -> Any:
    from sqlalchemy import bindparam, select

    from tympan.store.schema import runs

    stmt = select(runs.c.id).where(runs.c.name == bindparam("name"))
    if in_project:
        stmt = stmt.where(runs.c.project_id == bindparam("project_id"))
    return stmt.order_by(runs.c.created_at.desc()).limit(limit)


def _project(project_id: int | None) -> dict[str, int]:
    return {} if project_id is None else {"project_id": project_id}


def child_ids(conn: Connection, run_id: str) -> list[str]:
    """Runs whose parent is ``run_id``, oldest first (e.g. the probe runs of a model's run)."""
    from sqlalchemy import select

    from tympan.store.schema import runs

    stmt = select(runs.c.id).where(runs.c.parent_id == run_id)
    return list(conn.execute(stmt.order_by(runs.c.created_at, runs.c.id)).scalars())


def query(
    conn: Connection,
    project_ids: Sequence[int] | None = None,
    statuses: Sequence[str] | None = None,
    study_id: str | None = None,
) -> list[Row]:
    from sqlalchemy import select

    from tympan.store.schema import runs

    stmt = select(runs).order_by(runs.c.created_at.desc(), runs.c.id)
    if project_ids is not None:
        stmt = stmt.where(runs.c.project_id.in_(project_ids))
    if statuses:
        stmt = stmt.where(runs.c.status.in_(statuses))
    if study_id is not None:
        stmt = stmt.where(runs.c.study_id == study_id)
    return list(conn.execute(stmt))


def set_status(
    conn: Connection, run_id: str, status: str, ended_at: float | None, error: str | None = None
) -> None:
    from sqlalchemy import update

    from tympan.store.schema import runs

    values: dict[str, Any] = {"status": status, "ended_at": ended_at}
    if error is not None:
        values["error"] = error
    conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


def beat(conn: Connection, run_ids: Iterable[str], now: float) -> None:
    """Record that these runs' process is alive; revives a run wrongly presumed crashed."""
    from sqlalchemy import update

    from tympan.store.schema import runs

    ids = list(run_ids)
    if ids:
        conn.execute(
            update(runs)
            .where(runs.c.id.in_(ids), runs.c.status.in_(("running", "crashed")))
            .values(heartbeat_at=now, status="running", ended_at=None)
        )


def mark_crashed(conn: Connection, run_id: str, seen_heartbeat: float | None) -> bool:
    """Mark a silent run crashed, unless its heartbeat moved since we looked (it is alive)."""
    from sqlalchemy import update

    from tympan.store.schema import runs

    stmt = update(runs).where(runs.c.id == run_id, runs.c.status == "running")
    if seen_heartbeat is None:
        stmt = stmt.where(runs.c.heartbeat_at.is_(None))
    else:
        stmt = stmt.where(runs.c.heartbeat_at == seen_heartbeat)
    return conn.execute(stmt.values(status="crashed", ended_at=seen_heartbeat)).rowcount > 0


def reopen(conn: Connection, run_id: str, host: str, pid: int, now: float) -> None:
    from sqlalchemy import update

    from tympan.store.schema import runs

    conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(status="running", ended_at=None, heartbeat_at=now, host=host, pid=pid, error=None)
    )


def set_fields(conn: Connection, run_id: str, **values: Any) -> None:
    from sqlalchemy import update

    from tympan.store.schema import runs

    conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


def descendant_ids(conn: Connection, run_ids: Sequence[str]) -> list[str]:
    """The children of these runs, their children, and so on (not the runs themselves)."""
    from sqlalchemy import select

    from tympan.store.schema import runs

    found: list[str] = []
    seen = set(run_ids)
    layer = list(run_ids)
    while layer:
        stmt = select(runs.c.id).where(runs.c.parent_id.in_(layer))
        layer = [i for i in conn.execute(stmt).scalars() if i not in seen]
        seen.update(layer)
        found += layer
    return found


def model_uses(conn: Connection, run_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(run id, what refers to it) for the model versions and reports of these runs."""
    from sqlalchemy import select

    from tympan.store.schema import model_reports, model_versions

    ids = list(run_ids)
    out: list[tuple[str, str]] = []
    for i in range(0, len(ids), _BATCH):
        chunk = ids[i:i + _BATCH]
        out += [(r, f"model version {v}") for r, v in conn.execute(
            select(model_versions.c.run_id, model_versions.c.id).where(
                model_versions.c.run_id.in_(chunk)))]
        out += [(r, f"model report {v}") for r, v in conn.execute(
            select(model_reports.c.run_id, model_reports.c.id).where(
                model_reports.c.run_id.in_(chunk)))]
    return out


def delete_runs(conn: Connection, run_ids: Sequence[str]) -> set[str]:
    """Delete these runs and everything recorded under them (metrics, summaries, artifacts,
    audio, images, tables); the sha256 of every blob their artifacts named comes back, for
    the caller to collect those no other record names. A child run of one of them must be
    among them (its parent_id refers to it)."""
    from sqlalchemy import delete, select, update

    from tympan.store.schema import (
        artifacts,
        audio_samples,
        media,
        metric_chunks,
        run_summaries,
        runs,
    )

    ids = list(run_ids)
    shas: set[str] = set()
    for i in range(0, len(ids), _BATCH):  # unlink parents first: batches go in any order
        conn.execute(update(runs).where(runs.c.id.in_(ids[i:i + _BATCH]),
                                        runs.c.parent_id.is_not(None)).values(parent_id=None))
    for i in range(0, len(ids), _BATCH):
        chunk = ids[i:i + _BATCH]
        shas.update(conn.execute(select(artifacts.c.sha256).where(
            artifacts.c.run_id.in_(chunk))).scalars())
        for table in (media, audio_samples, artifacts, metric_chunks, run_summaries):
            conn.execute(delete(table).where(table.c.run_id.in_(chunk)))
        conn.execute(delete(runs).where(runs.c.id.in_(chunk)))
    return shas


def set_archived(conn: Connection, run_ids: Sequence[str], at: float | None) -> None:
    """Archive these runs at ``at`` (None: unarchive them)."""
    from sqlalchemy import update

    from tympan.store.schema import runs

    ids = list(run_ids)
    for i in range(0, len(ids), _BATCH):
        conn.execute(update(runs).where(runs.c.id.in_(ids[i:i + _BATCH]))
                     .values(archived_at=at))
