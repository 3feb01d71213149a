"""Why metric points are stored as chunked arrays: both layouts measured on the same data.

Writes 1,000,000 points of one metric in flushes of 10,000 (what the writer does under load)
and reads the series back, once with one row per point (the MLflow/Aim-style layout) and once
with one row per flush holding packed arrays (tympan's layout), on SQLite and, when
reachable, PostgreSQL. Prints points/s, read time and the ratio between the layouts.

    .venv/bin/python benchmarks/metric_layout.py [--points N] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROWS = sa.MetaData()
points = sa.Table(
    "points",
    ROWS,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("step", sa.BigInteger, primary_key=True),
    sa.Column("value", sa.Float),
    sa.Column("time", sa.Float),
)
chunks = sa.Table(
    "chunks",
    ROWS,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("steps", sa.LargeBinary),
    sa.Column("vals", sa.LargeBinary),
    sa.Column("times", sa.LargeBinary),
)


def _fetch(engine: sa.Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        cur.close()
    return rows


def measure(engine: sa.Engine, n: int, flush: int) -> dict[str, float]:
    ROWS.drop_all(engine)
    ROWS.create_all(engine)
    steps = np.arange(n, dtype=np.int64)
    values = np.random.default_rng(0).random(n)
    times = time.time() + steps * 1e-3
    out: dict[str, float] = {}

    t = time.perf_counter()
    for lo in range(0, n, flush):
        rows = [
            {"run_id": "r", "key": "loss", "step": int(s), "value": float(v), "time": float(w)}
            for s, v, w in zip(
                steps[lo : lo + flush], values[lo : lo + flush], times[lo : lo + flush], strict=True
            )
        ]
        with engine.begin() as conn:
            conn.execute(points.insert(), rows)
    out["rows_ingest"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    # Both layouts read through the raw DBAPI cursor: no Row-object overhead on either side.
    arr = np.array(_fetch(engine, "SELECT step, value, time FROM points ORDER BY step"))
    out["rows_read_ms"] = (time.perf_counter() - t) * 1e3
    assert len(arr) == n

    t = time.perf_counter()
    for seq, lo in enumerate(range(0, n, flush)):
        with engine.begin() as conn:
            conn.execute(
                chunks.insert(),
                [
                    {
                        "run_id": "r",
                        "key": "loss",
                        "seq": seq,
                        "steps": steps[lo : lo + flush].tobytes(),
                        "vals": values[lo : lo + flush].tobytes(),
                        "times": times[lo : lo + flush].tobytes(),
                    }
                ],
            )
    out["chunk_ingest"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    got = _fetch(engine, "SELECT steps, vals, times FROM chunks ORDER BY seq")
    read = [np.frombuffer(b"".join(bytes(r[i]) for r in got)) for i in range(3)]
    out["chunk_read_ms"] = (time.perf_counter() - t) * 1e3
    assert len(read[1]) == n
    ROWS.drop_all(engine)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--flush", type=int, default=10_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    console = Console()
    backends = {}
    with tempfile.TemporaryDirectory() as tmp:
        backends["SQLite"] = sa.create_engine(f"sqlite:///{Path(tmp) / 'layout.db'}")
        try:
            pg = sa.create_engine(args.pg)
            with pg.connect():
                pass
            backends["PostgreSQL"] = pg
        except Exception as exc:  # report and go on with SQLite only
            console.print(f"PostgreSQL skipped: {exc}")
        table = Table(title=f"metric layout, {args.points:,} points, flushes of {args.flush:,}")
        for col in (
            "backend",
            "layout",
            "ingest (points/s)",
            "read all (ms)",
            "ingest ratio",
            "read ratio",
        ):
            table.add_column(col, justify="right")
        for name, engine in backends.items():
            r = measure(engine, args.points, args.flush)
            table.add_row(
                name,
                "row per point",
                f"{r['rows_ingest']:,.0f}",
                f"{r['rows_read_ms']:,.0f}",
                "1.0x",
                "1.0x",
            )
            table.add_row(
                name,
                "chunked arrays",
                f"{r['chunk_ingest']:,.0f}",
                f"{r['chunk_read_ms']:,.1f}",
                f"{r['chunk_ingest'] / r['rows_ingest']:,.0f}x faster",
                f"{r['rows_read_ms'] / r['chunk_read_ms']:,.0f}x faster",
            )
            engine.dispose()
        console.print(table)


if __name__ == "__main__":
    main()
