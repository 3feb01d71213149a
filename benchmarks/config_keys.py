"""Where the time of a 3-key group-by goes, and whether config keys kept in a table of their
own would make it faster than reading each run's config JSON (issue 17, item 7).

Over a store filled by ``benchmarks/ui.py`` (the sweep project), the same group-by as
``/api/runs/groups?by=model.encoder,model.attention,optim.lr&metric=valid/wer.min`` is run
(a) as tympan runs it (``run_groups.group_rows``, its statements summed), (b) with the three
keys read from a key table (run_id, key, JSON value; primary key (run_id, key), index (key,
run_id)) instead of the JSON, in the one-window form group_rows' query had when this was
measured (before the member prefix of store/run_groups.py), and on SQLite (c) without the
memory-mapped reads of ``store/engine.py``. The key table is a TEMP table of the session:
the store is not changed. Each figure is the best of ``--repeat`` runs, a fresh connection
each (as the server opens one per request); SQLite's is CPU time of this process (the
database runs in it), PostgreSQL's the server's execution time (EXPLAIN ANALYZE).

    .venv/bin/python benchmarks/config_keys.py benchmarks/.out/ui/sqlite-100000-1000000-20
    .venv/bin/python benchmarks/config_keys.py \
        postgresql+psycopg://postgres@127.0.0.1:5432/tympan_bench_ui_10000_1000000_20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# benchmarks/logging.py would shadow the stdlib `logging` that SQLAlchemy imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlalchemy import text  # noqa: E402

from tympan.store import open_store, projects, run_groups  # noqa: E402

BY = ("model.encoder", "model.attention", "optim.lr")
METRIC = ("valid/wer", "min")
WINDOW = ("count(*) over w as size, row_number() over w as rank, count(value) over w as n, "
          "sum(value) over w as s1, sum(value * value) over w as s2")
ORDER = ("order by seed is null, seed, started_at, id "
         "rows between unbounded preceding and unbounded following")


def keyed_sql(dialect: str) -> str:
    """group_rows' query with the group read from the key table (three joins)."""
    joins = " ".join(f"left join keys k{i} on k{i}.run_id = runs.id and k{i}.key = '{key}'"
                     for i, key in enumerate(BY))
    values = [f"coalesce(k{i}.value, 'null')" for i in range(len(BY))]
    group = "'[' || " + " || ',' || ".join(values) + " || ']'"
    return (f"with g as materialized (select runs.id, runs.name, runs.status, runs.seed, "
            f"runs.started_at, {group} as grp, s.min as value from runs {joins} "
            f"left join run_summaries s on s.run_id = runs.id and s.key = '{METRIC[0]}' "
            f"where runs.project_id = :project) select * from (select g.*, {WINDOW} from g "
            f"window w as (partition by grp {ORDER})) x where rank <= 100")


def fill_keys(conn, dialect: str) -> int:
    """The TEMP key table of the three keys, from each run's config (JSON text values)."""
    conn.execute(text("create temp table keys (run_id varchar(32), key varchar(200), "
                      "value text, primary key (run_id, key))"))
    for key in BY:
        if dialect == "sqlite":
            path = "$." + ".".join(f'"{p}"' for p in key.split("."))
            value = f"json_quote(json_extract(config, '{path}'))"
        else:
            value = f"(config::jsonb #> '{{{key.replace('.', ',')}}}')::text"
        conn.execute(text(f"insert into keys select id, '{key}', {value} from runs "
                          f"where {value} is not null"))
    conn.execute(text("create index keys_by_key on keys (key, run_id)"))
    conn.execute(text("analyze keys" if dialect == "postgresql" else "analyze"))
    return conn.execute(text("select count(*) from keys")).scalar_one()


def timed(store, dialect: str, project: int, how: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        with store.engine.connect() as conn:
            if how == "no mmap":
                conn.exec_driver_sql("PRAGMA mmap_size = 0")
            if how == "key table":
                fill_keys(conn, dialect)
            if dialect == "postgresql":
                sql = keyed_sql(dialect) if how == "key table" else None
                best = min(best, pg_execution_ms(conn, project, sql))
                continue
            t0 = time.process_time()
            if how == "key table":
                conn.execute(text(keyed_sql(dialect)), {"project": project}).all()
            else:
                run_groups.group_rows(conn, BY, project_ids=[project], metric=METRIC,
                                     members=100)
            best = min(best, (time.process_time() - t0) * 1000)
    return best


def pg_execution_ms(conn, project: int, sql: str | None) -> float:
    """The server's execution time of the key-table query, or of group_rows' own statements
    (summed)."""
    if sql is not None:
        return _executed(conn.execute(text("EXPLAIN ANALYZE " + sql), {"project": project}))
    captured = []
    from sqlalchemy import event

    def keep(_conn, _cursor, statement, parameters, _context, _many) -> None:
        captured.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", keep)
    run_groups.group_rows(conn, BY, project_ids=[project], metric=METRIC, members=100)
    event.remove(conn, "before_cursor_execute", keep)
    return sum(_executed(conn.exec_driver_sql("EXPLAIN ANALYZE " + statement, parameters))
               for statement, parameters in captured)


def _executed(plan) -> float:
    line = next(p for p in plan.scalars() if p.startswith("Execution Time"))
    return float(line.split()[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="a store filled by benchmarks/ui.py")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    store = open_store(args.store)
    dialect = store.engine.dialect.name
    with store.read() as conn:
        project = projects.names(conn)
        project = next(i for i, name in project.items() if name == "sweep")
        runs = conn.execute(text("select count(*) from runs where project_id = :p"),
                            {"p": project}).scalar_one()
    unit = "ms of CPU" if dialect == "sqlite" else "ms executing (server)"
    hows = ["json (tympan)", "key table"] + (["no mmap"] if dialect == "sqlite" else [])
    figures = {how: timed(store, dialect, project, how, args.repeat) for how in hows}
    print(f"{dialect}, {runs:,} runs, group by {', '.join(BY)} with mean of "
          f"{'.'.join(METRIC)}, best of {args.repeat}:")
    base = figures["json (tympan)"]
    for how, ms in figures.items():
        print(f"  {how:<16} {ms:8.0f} {unit}   {ms / base:5.2f}x tympan's")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
