"""Study records: a study (its validated file), its trials, and the runner that holds it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, or_, select, update

from tympan.store.schema import studies, trials


def get(conn: Connection, study_id: str) -> Row | None:
    return conn.execute(select(studies).where(studies.c.id == study_id)).first()


def find(conn: Connection, project_id: int, name: str) -> Row | None:
    stmt = select(studies).where(studies.c.project_id == project_id, studies.c.name == name)
    return conn.execute(stmt).first()


def named(conn: Connection, name: str) -> list[Row]:
    """Studies called ``name`` in any project, newest first."""
    stmt = select(studies).where(studies.c.name == name).order_by(studies.c.created_at.desc())
    return list(conn.execute(stmt))


def with_id_prefix(conn: Connection, prefix: str) -> list[Row]:
    return list(conn.execute(select(studies).where(studies.c.id.like(f"{prefix}%")).limit(5)))


def all_studies(conn: Connection) -> list[Row]:
    return list(conn.execute(select(studies).order_by(studies.c.created_at)))


def insert(conn: Connection, **fields: Any) -> None:
    conn.execute(studies.insert().values(**fields))


def change(conn: Connection, study_id: str, **fields: Any) -> None:
    conn.execute(update(studies).where(studies.c.id == study_id).values(**fields))


def claim(conn: Connection, study_id: str, host: str, pid: int, now: float,
          free: tuple[str, int] | None) -> bool:
    """Take the study's runner slot if it is empty, stale (older than the caller judged), or
    ``free`` (a (host, pid) the caller found dead); atomic, so two runners cannot both win."""
    held = [studies.c.runner_pid.is_(None)]
    if free is not None:
        held.append((studies.c.runner_host == free[0]) & (studies.c.runner_pid == free[1]))
    stmt = (update(studies).where(studies.c.id == study_id, or_(*held))
            .values(runner_host=host, runner_pid=pid, runner_beat=now))
    return conn.execute(stmt).rowcount == 1


def release(conn: Connection, study_id: str, host: str, pid: int) -> None:
    conn.execute(update(studies).where(studies.c.id == study_id, studies.c.runner_host == host,
                                       studies.c.runner_pid == pid)
                 .values(runner_host=None, runner_pid=None, runner_beat=None))


def add_trials(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(trials.insert(), rows)


def trials_of(conn: Connection, study_id: str) -> list[Row]:
    return list(conn.execute(select(trials).where(trials.c.study_id == study_id)
                             .order_by(trials.c.id)))


def change_trial(conn: Connection, trial_id: int, **fields: Any) -> None:
    conn.execute(update(trials).where(trials.c.id == trial_id).values(**fields))


def trial_of_run(conn: Connection, run_id: str) -> Row | None:
    """The (latest) trial that ran as ``run_id``, if any."""
    stmt = select(trials).where(trials.c.run_id == run_id).order_by(trials.c.id.desc())
    return conn.execute(stmt.limit(1)).first()
