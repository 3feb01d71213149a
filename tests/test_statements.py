"""Store reads through stdlib sqlite3 (tympan.store.statements): the same rows as SQLAlchemy
gives for the same builder, a cache file that a changed source or a damaged file cannot make
wrong, and SQLAlchemy for what the stdlib path cannot do alike."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

import tympan
from tympan.records.query import RunQuery
from tympan.records.table import find_runs
from tympan.store import artifacts, environments, open_store, projects, run_table, runs, statements
from tympan.store.run_where import RunOrder, RunTest
from tympan.store.sqlite_reader import SqliteReader
from tympan.store.summaries import for_runs


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    where = str(tmp_path_factory.mktemp("statements") / "store")
    for i, encoder in enumerate(("gru", "conv", "gru")):
        with tympan.init(project="asr" if i < 2 else "tts", store=where, tags=["demo", encoder],
                         config={"encoder": encoder, "lr": 1e-3 * (i + 1), "flag": i == 1},
                         system_metrics=False, console=False) as run:
            run.log({"val/wer": 0.5 / (i + 1), "train/loss": float("nan") if i == 2 else 1.0},
                    step=0)
            run.log_artifact(f"run {i}".encode(), name="notes.txt")
    return where


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with nothing compiled in memory (the cache file is per test)."""
    statements._memory.clear()
    statements._loaded.clear()


def both(store_path: str, read) -> tuple:  # type: ignore[no-untyped-def]
    """``read(conn)`` through SQLAlchemy and through a SqliteReader."""
    with open_store(store_path) as store:
        with store.read() as conn:
            through_sqlalchemy = read(conn)
        with store.reader() as conn:
            assert isinstance(conn, SqliteReader)
            through_sqlite3 = read(conn)
    return through_sqlalchemy, through_sqlite3


def plain(rows: list) -> list[tuple]:  # type: ignore[type-arg]
    return [(tuple(row._fields), tuple(row)) for row in rows]


def test_the_reader_gives_sqlalchemys_rows_json_columns_parsed(store_path: str) -> None:
    with open_store(store_path) as store, store.read() as conn:
        ids = sorted(row[0] for row in conn.exec_driver_sql("SELECT id FROM runs"))
    reads = {
        "get": lambda c: [runs.get(c, ids[0])],
        "by_ids": lambda c: sorted(runs.by_ids(c, ids), key=lambda r: r.id),
        "prefix": lambda c: runs.ids_with_prefix(c, ids[0][:3]),
        "names": lambda c: projects.names(c),
        "artifacts": lambda c: artifacts.for_run(c, ids[1]),
    }
    for name, read in reads.items():
        sqlalchemy_rows, sqlite3_rows = both(store_path, read)
        if name in ("get", "by_ids", "artifacts"):
            assert plain(sqlite3_rows) == plain(sqlalchemy_rows), name
            assert sqlite3_rows, name
        else:
            assert sqlite3_rows == sqlalchemy_rows, name
    row = both(store_path, lambda c: runs.get(c, ids[0]))[1]
    assert isinstance(row.config, dict) and isinstance(row.tags, list)  # JSON parsed
    env = both(store_path, lambda c: environments.get(c, row.env_id))
    assert env[0] == env[1]


def test_filters_orders_and_summaries_match(store_path: str) -> None:
    tests = (RunTest("config", "encoder", "=", ("gru",)), RunTest("tags", "", "has", ("demo",)),
             RunTest("metric", "val/wer", "<", (0.4,)), RunTest("archived", "", "hide", ()))
    order = RunOrder("config", "lr", descending=True)
    with open_store(store_path) as store, store.read() as conn:
        asr = [i for i, n in projects.names(conn).items() if n == "asr"]

    def page(c):  # type: ignore[no-untyped-def]
        total, rows = run_table.page_rows(c, tests=tests[2:], order=order, limit=None)
        scoped = run_table.page_rows(c, project_ids=asr, tests=tests[:2], limit=1, offset=0)
        by_loss = [plain(run_table.page_rows(c, order=RunOrder("metric", "train/loss", "last",
                                                                 descending), limit=limit,
                                             offset=offset)[1])
                   for descending in (False, True) for limit, offset in ((2, 1), (None, 0))]
        return total, plain(rows), scoped[0], plain(scoped[1]), by_loss

    sqlalchemy_page, sqlite3_page = both(store_path, page)
    assert sqlite3_page == sqlalchemy_page
    assert sqlite3_page[0] == 2 and sqlite3_page[2] == 1  # the filters did filter
    assert [len(p) for p in sqlite3_page[4]] == [2, 3, 2, 3]  # NaN's run last, both ways
    summaries = both(store_path, lambda c: for_runs(c, [r[1][0] for r in page(c)[1]]))
    assert repr(summaries[0]) == repr(summaries[1])  # NaN != NaN: compare the text
    nan = both(store_path, lambda c: run_table.config_texts(c, asr, since=0.0))
    assert nan[0] == nan[1] and len(nan[0]) == 2


def test_find_runs_reads_without_sqlalchemy_once_compiled(store_path: str) -> None:
    """A second process (here: memory cleared) finds every statement in the cache file,
    filters and sorts on metrics included (their numbers are converted when compiled)."""
    query = RunQuery.from_options(where=["val/wer < 0.4", "encoder in (gru, conv)"],
                                  sort="val/wer", descending=True)
    with open_store(store_path) as store:
        first = find_runs(store, query)
    file = statements.cache_file()
    compiled = json.loads(file.read_text())
    assert any("run_table._valued_page" in key for key in compiled)
    statements._memory.clear()
    statements._loaded.clear()
    built = statements._built.copy()
    statements._built.clear()
    try:
        with open_store(store_path) as store:
            again = find_runs(store, query)
        assert not statements._built  # nothing was built: every SQL text came from the file
    finally:
        statements._built.update(built)
    assert [r.id for r in again] == [r.id for r in first]
    assert [r.summary["val/wer"].last for r in again] == [0.25, 0.5 / 3]


def test_a_damaged_cache_file_is_rebuilt(store_path: str) -> None:
    file = statements.cache_file()
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text('{"tympan.store.projects._names()": ')  # cut short
    with open_store(store_path) as store, store.reader() as conn:
        assert sorted(projects.names(conn).values()) == ["asr", "tts"]
    assert "tympan.store.projects._names()" in json.loads(file.read_text())


def test_a_changed_source_file_changes_the_fingerprint(tmp_path: Path) -> None:
    source = tmp_path / "run_table.py"
    source.write_text("x = 1\n")
    before = statements.fingerprint([source])
    assert statements.fingerprint([source]) == before
    source.write_text("x = 22\n")
    os.utime(source, ns=(1, 1))
    assert statements.fingerprint([source]) != before


def _exact_number():  # type: ignore[no-untyped-def]
    from sqlalchemy import Numeric, cast, literal, select

    return select(cast(literal("2.5"), Numeric(10, 2)).label("value"))


_exact_number.__module__ = "tympan.store.test_only"  # builders live in tympan.store


def test_what_sqlalchemy_converts_runs_through_sqlalchemy(store_path: str) -> None:
    """A Numeric column comes back as a Decimal from SQLAlchemy; the reader must not give
    the raw float instead."""
    assert not statements.compiled(_exact_number, ()).fit
    assert both(store_path, lambda c: statements.scalar(c, _exact_number)) == (
        Decimal("2.50"), Decimal("2.50"))


def test_an_empty_in_list_selects_nothing(store_path: str) -> None:
    assert both(store_path, lambda c: runs.by_ids(c, [])) == ([], [])
    assert both(store_path, lambda c: run_table.running_rows(c, [])) == ([], [])


def test_builders_outside_the_store_are_refused(store_path: str) -> None:
    def elsewhere():  # type: ignore[no-untyped-def]
        from sqlalchemy import literal, select

        return select(literal(1))

    with open_store(store_path) as store, store.reader() as conn, \
            pytest.raises(ValueError, match="live in tympan.store"):
        statements.rows(conn, elsewhere)


def test_a_long_lived_process_keeps_a_bounded_number_of_statements(
    store_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server sees endless distinct filters (their values are part of the shape)."""
    monkeypatch.setattr(statements, "KEPT", 4)
    with open_store(store_path) as store, store.reader() as conn:
        for limit in range(1, 11):
            assert runs.ids_named(conn, "no-such-run", limit=limit) == []
            assert len(statements._memory) <= 4 and len(statements._built) <= 4
    assert len(json.loads(statements.cache_file().read_text())) <= 4
