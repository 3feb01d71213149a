"""Metric series, stored as chunks of little-endian arrays (see schema.py for why)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, delete, func, select

from tympan.store.schema import metric_chunks
from tympan.store.upsert import insert_for

_STEP = np.dtype("<i8")
_F64 = np.dtype("<f8")


@dataclass(frozen=True)
class Chunk:
    run_id: str
    key: str
    seq: int
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def row(self) -> dict:
        return {
            "run_id": self.run_id,
            "key": self.key,
            "seq": self.seq,
            "n": len(self.steps),
            "step_lo": int(self.steps.min()),
            "step_hi": int(self.steps.max()),
            "steps": self.steps.astype(_STEP, copy=False).tobytes(),
            "vals": self.values.astype(_F64, copy=False).tobytes(),
            "times": self.times.astype(_F64, copy=False).tobytes(),
        }


@dataclass(frozen=True)
class Series:
    """One metric's history in logging order."""

    key: str
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


_PG_INSERT = (
    "INSERT INTO metric_chunks (run_id, key, seq, n, step_lo, step_hi, steps, vals, times) "
    "VALUES (%s, %s, %s, %s, %s, %s, %b, %b, %b) ON CONFLICT (run_id, key, seq) DO NOTHING"
)
_PG_READ = (
    "SELECT steps, vals, times FROM metric_chunks WHERE run_id = %s AND key = %s ORDER BY seq"
)


def append(conn: Connection, chunks: Iterable[Chunk]) -> None:
    """Store chunks; one already stored under its (run, key, seq) is skipped, so sending the
    same chunks twice (a retried request whose response was lost) stores them once."""
    rows = [c.row() for c in chunks]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # psycopg sends bytea as hex text unless told otherwise (%b): 2-3x slower at 10 MB.
        with conn.connection.dbapi_connection.cursor() as cur:
            cur.executemany(_PG_INSERT, [tuple(r.values()) for r in rows])
        return
    conn.execute(insert_for(conn, metric_chunks).on_conflict_do_nothing(), rows)


def next_seqs(conn: Connection, run_id: str) -> dict[str, int]:
    stmt = (
        select(metric_chunks.c.key, func.max(metric_chunks.c.seq))
        .where(metric_chunks.c.run_id == run_id)
        .group_by(metric_chunks.c.key)
    )
    return {key: seq + 1 for key, seq in conn.execute(stmt)}


def max_step(conn: Connection, run_id: str) -> int | None:
    stmt = select(func.max(metric_chunks.c.step_hi)).where(metric_chunks.c.run_id == run_id)
    return conn.execute(stmt).scalar()


def keys(conn: Connection, run_id: str) -> list[str]:
    stmt = (
        select(metric_chunks.c.key)
        .where(metric_chunks.c.run_id == run_id)
        .group_by(metric_chunks.c.key)
        .order_by(metric_chunks.c.key)
    )
    return list(conn.execute(stmt).scalars())


def read(conn: Connection, run_id: str, key: str) -> Series:
    stmt = (
        select(metric_chunks.c.steps, metric_chunks.c.vals, metric_chunks.c.times)
        .where(metric_chunks.c.run_id == run_id, metric_chunks.c.key == key)
        .order_by(metric_chunks.c.seq)
    )
    if conn.dialect.name == "postgresql":
        with conn.connection.dbapi_connection.cursor(binary=True) as cur:  # no hex decoding
            cur.execute(_PG_READ, (run_id, key))
            rows = cur.fetchall()
    else:
        rows = conn.execute(stmt).all()
    if not rows:
        empty = np.empty(0)
        return Series(key, empty.astype(np.int64), empty, empty)
    return Series(
        key,
        _join([r[0] for r in rows], _STEP),
        _join([r[1] for r in rows], _F64),
        _join([r[2] for r in rows], _F64),
    )


def _join(parts: list[bytes], dtype: np.dtype) -> np.ndarray:
    if len(parts) == 1:
        return np.frombuffer(parts[0], dtype=dtype)  # zero-copy (read-only) view
    out = np.empty(sum(len(p) for p in parts) // dtype.itemsize, dtype=dtype)
    at = 0
    for part in parts:
        chunk = np.frombuffer(part, dtype=dtype)
        out[at : at + len(chunk)] = chunk
        at += len(chunk)
    return out


def compact(conn: Connection, run_id: str, key: str, target: int) -> int:
    """Merge a series' chunks into chunks of about ``target`` points; returns chunks after."""
    series = read(conn, run_id, key)
    conn.execute(
        delete(metric_chunks).where(metric_chunks.c.run_id == run_id, metric_chunks.c.key == key)
    )
    chunks = [
        Chunk(run_id, key, seq, series.steps[i : i + target], series.values[i : i + target],
              series.times[i : i + target])
        for seq, i in enumerate(range(0, len(series), target))
    ]
    append(conn, chunks)
    return len(chunks)


def chunk_counts(conn: Connection, run_id: str) -> dict[str, int]:
    stmt = (
        select(metric_chunks.c.key, func.count())
        .where(metric_chunks.c.run_id == run_id)
        .group_by(metric_chunks.c.key)
    )
    return dict(conn.execute(stmt).all())
