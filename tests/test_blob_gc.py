"""`tympan db gc` removes blob files no record refers to, and never a live writer's."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import tympan
from tympan.cli.app import main
from tympan.store import open_store, schema
from tympan.store.garbage import references

DAY = 86400


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_gc_removes_what_no_record_names_and_keeps_a_live_writers_blob(tmp_path, capsys) -> None:
    store = tmp_path / "s"
    run = tympan.init(project="p", store=str(store))
    run.log_artifact(b"epoch 1 weights", name="last.pt")
    run.flush()
    run.log_artifact(b"epoch 2 weights", name="last.pt")  # epoch 1's blob: no longer named
    run.log_artifact(b"notes", name="notes.txt")
    run.flush()
    opened = open_store(store)
    blobs = opened.blobs
    root = Path(blobs.root)
    crashed, _ = blobs.put_bytes(b"a killed writer's checkpoint")  # its record never landed
    unfinished = root / ".incoming-x1y2z3"  # a copy killed half way
    unfinished.write_bytes(b"half a che")
    for path in root.rglob("*"):
        if path.is_file():
            _age(path, 2 * DAY)
    live, _ = blobs.put_bytes(b"a running writer's blob, its record on the way")
    replaced = [p for p in root.glob("*/*") if p.read_bytes() == b"epoch 1 weights"]

    assert main(["--store", str(store), "db", "gc", "--dry-run"]) == 0
    assert capsys.readouterr().out == (
        f"would remove 3 files (0.0 MiB) from {root}: 1 never recorded, 1 no longer "
        "referenced, 1 unfinished copies\nkept 1 unreferenced files younger than 24h\n")
    assert unfinished.exists() and Path(blobs.path(crashed)).exists()  # a dry run removes nothing

    assert main(["--store", str(store), "db", "gc"]) == 0
    assert capsys.readouterr().out.startswith("removed 3 files")
    assert not unfinished.exists() and not Path(blobs.path(crashed)).exists()
    assert not replaced[0].exists()
    assert Path(blobs.path(live)).exists()  # younger than --older-than: never taken
    record = tympan.load_run(run.id, store=str(store))
    assert record.read_artifact("last.pt") == b"epoch 2 weights"  # what runs name is intact
    assert record.read_artifact("notes.txt") == b"notes"

    _age(Path(blobs.path(live)), 2 * DAY)  # an old blob is touched when a record of it lands
    run.log_artifact(b"a running writer's blob, its record on the way", name="late.bin")
    run.flush()
    assert main(["--store", str(store), "db", "gc", "--older-than", "1h"]) == 0
    assert capsys.readouterr().out.startswith("removed 0 files")
    assert record.read_artifact("late.bin") == b"a running writer's blob, its record on the way"
    run.finish()
    opened.close()


def test_gc_refuses_an_age_it_cannot_read(tmp_path, capsys) -> None:
    tympan.init(project="p", store=str(tmp_path / "s")).finish()
    assert main(["--store", str(tmp_path / "s"), "db", "gc", "--older-than", "soon"]) == 1
    assert "not an age" in capsys.readouterr().err


def test_every_column_holding_a_blob_hash_counts_as_a_reference(tmp_path) -> None:
    hashes = [(t.name, c.name) for t in schema.metadata.sorted_tables for c in t.columns
              if "sha" in c.name and t.name != "blobs"]
    assert all(name == "sha256" or name.endswith("_sha256") for _, name in hashes), hashes
    assert ("trials", "log_sha256") in hashes and ("artifacts", "sha256") in hashes
    with open_store(tmp_path / "s", create=True) as store, store.read() as conn:
        assert references(conn) == set()


@pytest.mark.parametrize("age", ["0", "30s", "10m", "24h", "7d", "1.5h"])
def test_ages(age: str) -> None:
    from tympan.cli.db import parse_age

    assert parse_age(age) >= 0
