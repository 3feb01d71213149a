"""A damaged SQLite store is named as damaged, never silently recreated, read or written; the
upgrade hint is a command line that works."""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
from pathlib import Path

import pytest

import tympan
from tympan.cli.app import main
from tympan.errors import SchemaVersionError, StoreCorruptError
from tympan.store import open_store, versioning
from tympan.track.stores import close_stores, shared_transport


def _store_with_runs(path: Path, runs: int = 1, points: int = 100) -> list[str]:
    ids = []
    for i in range(runs):
        run = tympan.init(project="p", name=f"r{i}", store=str(path))
        for step in range(points):
            run.log({"loss": 1.0 / (step + 1), "acc": step / points}, step=step)
        run.finish()
        ids.append(run.id)
    close_stores()
    with sqlite3.connect(path / "tympan.db") as conn:  # everything into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return ids


def test_a_store_truncated_to_zero_bytes_is_refused_not_recreated(tmp_path, capsys) -> None:
    store = tmp_path / "s"
    (run_id,) = _store_with_runs(store)
    db = store / "tympan.db"
    db.write_bytes(b"")  # a crash or a full disk left the file empty; the blobs are still there
    with pytest.raises(StoreCorruptError, match=r"is empty \(0 bytes\).*backup"):
        tympan.init(project="p", store=str(store))
    with pytest.raises(StoreCorruptError, match="is empty"):
        tympan.load_run(run_id, store=str(store))
    assert main(["--store", str(store), "db", "upgrade"]) == 1
    assert "is empty" in capsys.readouterr().err
    assert db.stat().st_size == 0  # nothing silently made a new, empty store in its place


def test_a_store_with_garbage_mid_file_is_refused_when_opened_for_writing(
    tmp_path, capsys, monkeypatch
) -> None:
    store = tmp_path / "s"
    _store_with_runs(store, runs=6, points=20_000)
    assert main(["--store", str(store), "db", "check"]) == 0
    assert "ok: the store at" in capsys.readouterr().out
    db = store / "tympan.db"
    size, page = db.stat().st_size, 65536
    assert size >= 8 * page
    with open(db, "r+b") as f:  # one page of garbage in the middle, the header intact
        f.seek((size // page // 2) * page)
        f.write(os.urandom(page))
    # quick_check names the damage, or the query that opening runs first does when the page
    # is one of its tables' (the next test): either way as damage, with the way back
    with pytest.raises(StoreCorruptError, match=r"is damaged \(SQLite.*backup"):
        tympan.init(project="p", store=str(store))
    monkeypatch.setenv("TYMPAN_CHECK_STORE", "0")  # the check is skipped, as documented
    shared_transport(str(store))
    close_stores()
    assert main(["--store", str(store), "db", "check"]) == 1
    out = capsys.readouterr()
    assert "integrity_check found:\n  On tree page" in out.out and "is damaged" in out.err


def test_damage_that_opening_meets_first_is_named_with_how_to_recover(tmp_path) -> None:
    """Opening reads the schema revision before quick_check runs: garbage on that table's page
    is met by that query, and must be named as damage with the way back, as quick_check's
    finding is (it read "not a readable tympan store" and no more, when the middle page of
    the test above happened to be one that opening reads)."""
    store = tmp_path / "s"
    _store_with_runs(store)
    db = store / "tympan.db"
    with sqlite3.connect(db) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'alembic_version'"
                            ).fetchone()[0]
    with open(db, "r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\xff" * page)
    with pytest.raises(StoreCorruptError) as caught:
        tympan.init(project="p", store=str(store))
    message = str(caught.value)
    assert f"the store at {db} is damaged (SQLite: " in message, message
    assert "malformed" in message and "backup" in message and ".recover" in message
    assert f"tympan --store {shlex.quote(str(db))} db check" in message


def test_the_upgrade_hint_is_a_command_line_that_upgrades(tmp_path, capsys) -> None:
    from alembic import command
    from alembic.config import Config

    store = tmp_path / "my store"  # a space: the hint must quote it
    (run_id,) = _store_with_runs(store)
    with open_store(store) as opened, opened.engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(versioning.MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, versioning.KNOWN[0])
    with pytest.raises(SchemaVersionError) as refused:
        open_store(store)
    hint = re.search(r"run `([^`]+)`", str(refused.value)).group(1)
    argv = shlex.split(hint)  # as a shell would split it
    assert argv[0] == "tympan"
    assert main(argv[1:]) == 0, capsys.readouterr().err
    assert f"-> {versioning.HEAD}" in capsys.readouterr().out
    assert tympan.load_run(run_id, store=str(store)).summary["loss"].count == 100
