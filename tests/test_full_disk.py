"""A store whose disk fills up or turns read-only, on a real small filesystem: training goes
on, points and files wait (bounded) and land when the disk recovers, a backlog bigger than the
free space lands in pieces."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.disk_fixtures import SmallDisk, mounted_small_disk

import tympan

TONE = 0.3 * np.sin(np.arange(16_000) / 10.0)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with mounted_small_disk(tmp_path) as disk:
        yield disk


@pytest.mark.parametrize("failure", ["full", "read-only"])
def test_training_goes_on_while_the_stores_disk_is_full_or_read_only(
    small_disk: SmallDisk, tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    store = str(small_disk.path / "store")
    run = tympan.init(project="p", store=store)
    run.log({"loss": 0.0}, step=0)
    run.flush()
    checkpoint = tmp_path / "last.pt"  # saved on another disk, overwritten every epoch
    saved = []
    with caplog.at_level(logging.WARNING, logger="tympan"):
        small_disk.fill() if failure == "full" else small_disk.read_only(True)
        for step in range(1, 1501):
            run.log({"loss": float(step)}, step=step)
            if step % 300 == 0:  # an "epoch": none of these may raise into training
                saved.append(os.urandom(200_000))
                checkpoint.write_bytes(saved[-1])
                run.log_artifact(checkpoint)
                run.log_artifact(f"epoch {step}".encode(), name=f"notes/epoch-{step}.txt")
                run.log_audio("val/tone", TONE * step / 1500, 16_000, step=step)
                time.sleep(0.3)  # flushes fail meanwhile
        small_disk.free() if failure == "full" else small_disk.read_only(False)
        run.finish()
    warned = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warned) == 1, warned  # once, not once per flush or per file
    assert ("No space left" if failure == "full" else "Read-only file system") in warned[0]
    record = tympan.load_run(run.id, store=store)
    np.testing.assert_array_equal(record.history("loss").steps, np.arange(1501))
    assert record.read_artifact("last.pt") == saved[-1]  # the newest checkpoint
    for step in range(300, 1501, 300):
        assert record.read_artifact(f"notes/epoch-{step}.txt") == f"epoch {step}".encode()
    assert [c.step for c in record.audio_samples()] == list(range(300, 1501, 300))
    samples, _, _ = record.read_audio("val/tone", step=1500)
    np.testing.assert_allclose(samples, TONE, atol=1e-4)


def test_files_waiting_for_a_full_disk_are_bounded_and_keep_the_newest_checkpoint(
    small_disk: SmallDisk, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TYMPAN_SPOOL_MB", "1")
    store = str(small_disk.path / "store")
    run = tympan.init(project="p", store=store)
    run.flush()
    checkpoint = tmp_path / "last.pt"
    with caplog.at_level(logging.WARNING, logger="tympan"):
        small_disk.fill()
        for epoch in range(6):  # six 400 KiB saves under one name: one copy waits, not six
            checkpoint.write_bytes(bytes([epoch]) * (400 << 10))
            run.log_artifact(checkpoint)
        run.log_artifact(b"a" * (400 << 10), name="a.bin")  # 800 KiB wait: within 1 MiB
        run.log_artifact(b"b" * (400 << 10), name="b.bin")  # 1200 KiB would not be
        small_disk.free()
        run.finish()
    dropped = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    assert len(dropped) == 1 and "artifact b.bin" in dropped[0], dropped
    assert "TYMPAN_SPOOL_MB=1" in dropped[0]
    record = tympan.load_run(run.id, store=store)
    assert sorted(a.path for a in record.artifacts()) == ["a.bin", "last.pt"]
    assert record.read_artifact("last.pt") == bytes([5]) * (400 << 10)


def test_a_backlog_bigger_than_the_free_space_lands_in_pieces(small_disk: SmallDisk) -> None:
    store = small_disk.path / "store"
    run = tympan.init(project="p", store=str(store))
    run.log({"a": 0.0, "b": 0.0}, step=0)
    run.flush()
    # A reader keeps the store open throughout (as `tympan ui` would), so only SQLite's own
    # checkpoints keep the WAL small: with a 64 MiB WAL this test hung in CI.
    reader = sqlite3.connect(store / "tympan.db")
    small_disk.fill()
    steps = 250_000  # 500,000 points, 12 MB of arrays: more than the room made below
    for step in range(1, steps):
        run.log({"a": float(step), "b": -float(step)}, step=step)
    time.sleep(1.0)  # the writer takes it all in, and fails to store it
    small_disk.leave_free(6 << 20)

    def stored() -> int:
        return reader.execute("SELECT coalesce(sum(n), 0) FROM metric_chunks WHERE key = 'a'"
                              ).fetchone()[0]

    deadline = time.monotonic() + 20
    while stored() <= 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    landed = stored()
    assert 1 < landed < steps  # what fits has landed; one transaction of it all never would
    small_disk.free()
    run.finish(timeout=120)
    reader.close()
    record = tympan.load_run(run.id, store=str(store))
    np.testing.assert_array_equal(record.history("a").steps, np.arange(steps))
    np.testing.assert_array_equal(record.history("b").values, -np.arange(steps))
    assert record.summary["a"].count == steps and record.summary["b"].min == -(steps - 1)


def test_a_run_finishes_when_merging_its_chunks_does_not_fit(
    small_disk: SmallDisk, caplog: pytest.LogCaptureFixture,
) -> None:
    # finish() merges a series' many small chunks into few; on a nearly full disk that
    # rewrite cannot fit, and it must not keep the run from finishing (it hung CI forever).
    store = str(small_disk.path / "store")
    run = tympan.init(project="p", store=store)
    steps = 0
    for _ in range(40):  # 40 flushes: 40 chunks of 10,000 points or more, 9.6 MB in all
        for _ in range(10_000):
            run.log({"a": float(steps)}, step=steps)
            steps += 1
        run.flush()
    written = _chunks(small_disk, "a")  # 40, or more where the writer's timer flushed too
    assert written >= 40
    small_disk.leave_free(1 << 20)  # room for the status, not for a second copy of the series
    with caplog.at_level(logging.WARNING, logger="tympan"):
        run.finish(timeout=60)
    merged = [r.getMessage() for r in caplog.records if "merge" in r.getMessage()]
    assert len(merged) == 1 and "run " + run.id in merged[0], merged
    small_disk.free()
    record = tympan.load_run(run.id, store=store)
    assert record.status == "finished"
    np.testing.assert_array_equal(record.history("a").steps, np.arange(steps))
    assert _chunks(small_disk, "a") == written  # left as they were: every point is there,
    # only not merged


def _chunks(small_disk: SmallDisk, key: str) -> int:
    """How many stored chunks the series ``key`` has in the small disk's store."""
    with contextlib.closing(sqlite3.connect(small_disk.path / "store" / "tympan.db")) as conn:
        return conn.execute("SELECT count(*) FROM metric_chunks WHERE key = ?",
                            (key,)).fetchone()[0]


def test_the_wal_stays_small_while_another_process_has_the_store_open(tmp_path: Path) -> None:
    # A reader (`tympan ui`, a notebook) keeps the file open, so closing the writer's
    # connections never checkpoints the WAL. SQLite's own checkpoint comes at 1000 pages, 64 MiB
    # with our page size: a WAL that large, not yet in the database file, needs as much again
    # free to be checkpointed, and a nearly full disk then refused every write for good (it hung
    # the backlog test above in CI).
    from tympan.store.engine import WAL_BYTES

    store = tmp_path / "store"
    run = tympan.init(project="p", store=str(store))
    run.flush()
    reader = sqlite3.connect(store / "tympan.db")
    try:
        reader.execute("SELECT count(*) FROM runs").fetchone()  # no transaction stays open
        wal = store / "tympan.db-wal"
        largest, step = 0, 0
        for _ in range(4):  # 4 x 100,000 points, ~10 MB in all
            for _ in range(100_000):
                run.log({"a": float(step)}, step=step)
                step += 1
            run.flush()
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        assert largest <= 2 * WAL_BYTES, f"the WAL grew to {largest / 2**20:.1f} MiB"
        run.finish()
        rows = reader.execute("SELECT coalesce(sum(n), 0) FROM metric_chunks").fetchone()[0]
        assert rows == step  # every point is there, through the reader's connection too
    finally:
        reader.close()
