"""Crashes, concurrency and an unwritable store: real processes, real signals, real locks."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tympan
from tympan.store import open_store, runs
from tympan.track import liveness

WORKERS = str(Path(__file__).with_name("workers.py"))
FLUSH_INTERVAL = 0.5


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TYMPAN_")}
    env.update({"TYMPAN_CAPTURE_ENV": "0", "TYMPAN_FLUSH_INTERVAL": str(FLUSH_INTERVAL),
                "TYMPAN_SYSTEM_METRICS": "0", "TYMPAN_CONSOLE": "0"}, **extra)
    return env


@pytest.mark.slow
def test_sigkill_loses_at_most_one_flush_interval_and_shows_crashed(store_url: str) -> None:
    child = subprocess.Popen([sys.executable, WORKERS, "forever", store_url],
                             stdout=subprocess.PIPE, text=True, env=_child_env())
    try:
        run_id = child.stdout.readline().strip()
        time.sleep(2.5)
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.stdout.close()
    record = tympan.load_run(run_id, store=store_url)
    assert record.status == "crashed"  # pid is gone: seen at once, no waiting for a timeout
    wall = record.history("wall")
    assert len(wall) > 500
    np.testing.assert_array_equal(wall.steps, np.arange(len(wall)))  # a prefix, no holes
    lost_seconds = killed_at - wall.values[-1]
    # One interval, plus the time one flush takes on a busy 2-core CI machine.
    assert lost_seconds <= FLUSH_INTERVAL + 0.5, lost_seconds
    if store_url.startswith("postgresql"):
        return
    with sqlite3.connect(Path(store_url) / "tympan.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_sixteen_processes_log_into_one_store_at_once(store_url: str) -> None:
    points, keys = 3000, 4
    children = [
        subprocess.Popen([sys.executable, WORKERS, "many", store_url, str(points), str(keys),
                          str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_child_env())
        for i in range(16)
    ]
    ids = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        ids.append(out.strip())
    found = tympan.find_runs(store=store_url, project="many")
    assert sorted(r.id for r in found) == sorted(ids)
    assert {r.status for r in found} == {"finished"}
    assert sorted(r.config["worker"] for r in found) == sorted(str(i) for i in range(16))
    for record in found:
        assert {k: s.count for k, s in record.summary.items()} == {f"k{j}": points
                                                                   for j in range(keys)}
        series = record.history("k3")
        np.testing.assert_array_equal(series.steps, np.arange(points))
        np.testing.assert_allclose(series.values, np.arange(points) * 0.5 + 3)


def test_training_survives_a_locked_sqlite_store(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TYMPAN_BUSY_TIMEOUT", "0.2")
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    run.log({"loss": 0.0}, step=0)
    run.flush()
    blocker = sqlite3.connect(tmp_path / "s" / "tympan.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock for a while
    with caplog.at_level(logging.WARNING, logger="tympan"):
        started = time.perf_counter()
        for step in range(1, 3001):
            run.log({"loss": float(step)}, step=step)
            if step % 100 == 0:
                time.sleep(0.05)  # ~1.5 s of "training" while the store is locked
        assert time.perf_counter() - started < 5  # log() never waited for the store
        blocker.execute("ROLLBACK")
        blocker.close()
        run.finish()
    warnings = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1, warnings  # warned once, not once per flush
    assert "database is locked" in warnings[0]
    series = tympan.load_run(run.id, store=store).history("loss")
    np.testing.assert_array_equal(series.steps, np.arange(3001))


@pytest.mark.postgres
def test_training_survives_a_read_only_postgres(pg_database: str, caplog) -> None:
    import psycopg
    from tests.conftest import PG_ADMIN

    name = pg_database.rsplit("/", 1)[1]
    run = tympan.init(project="p", store=pg_database)
    run.log({"loss": 0.0}, step=0)
    run.flush()

    def set_read_only(flag: str) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {flag}')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))

    with caplog.at_level(logging.WARNING, logger="tympan"):
        set_read_only("on")
        for step in range(1, 2001):
            run.log({"loss": float(step)}, step=step)
            if step % 100 == 0:
                time.sleep(0.05)
        set_read_only("off")
        run.finish()
    assert sum("cannot write" in r.getMessage() for r in caplog.records) == 1
    series = tympan.load_run(run.id, store=pg_database).history("loss")
    np.testing.assert_array_equal(series.steps, np.arange(2001))


def test_spool_is_bounded_and_says_what_it_dropped(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TYMPAN_BUSY_TIMEOUT", "0.1")
    monkeypatch.setenv("TYMPAN_SPOOL_POINTS", "500")
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    run.flush()
    blocker = sqlite3.connect(tmp_path / "s" / "tympan.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.WARNING, logger="tympan"):
        for step in range(2000):
            run.log({"loss": float(step)}, step=step)
            if step % 200 == 199:
                time.sleep(0.7)  # let a flush fail between bursts
        blocker.execute("ROLLBACK")
        blocker.close()
        run.finish()
    assert any("spool full" in r.getMessage() for r in caplog.records)
    record = tympan.load_run(run.id, store=store)
    series = record.history("loss")
    assert 0 < len(series) < 2000
    assert series.steps[-1] == 1999  # the newest points are the ones kept
    summary = record.summary["loss"]  # counts what is stored, not what was dropped
    assert (summary.count, summary.min, summary.max) == (len(series), series.values.min(), 1999)


def test_silent_runs_on_other_hosts_are_presumed_crashed_and_heal(tmp_path, monkeypatch) -> None:
    store_path = str(tmp_path / "s")
    run = tympan.init(project="p", store=store_path)
    run.finish()
    store = open_store(store_path)
    now = time.time()
    with store.write() as conn:
        for run_id, host, beat in [("remotealive", "gpu-node-7", now - 5),
                                   ("remotesilent", "gpu-node-8", now - 600),
                                   ("localdead", liveness.socket.gethostname(), now)]:
            runs.insert(conn, id=run_id, project_id=1, name=run_id, status="running",
                        created_at=now - 700, started_at=now - 700, heartbeat_at=beat,
                        config={}, tags=[], note="", host=host, pid=2**22 + 12345)
    statuses = {r.id: r.status for r in tympan.find_runs(store=store_path)}
    assert statuses["remotealive"] == "running"
    assert statuses["remotesilent"] == "crashed"
    assert statuses["localdead"] == "crashed"
    with store.write() as conn:  # the silent run's heartbeat arrives after all
        runs.beat(conn, ["remotesilent"], time.time())
    assert tympan.load_run("remotesilent", store=store_path).status == "running"
    store.close()


def test_resuming_a_live_run_is_refused(tmp_path) -> None:
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    with pytest.raises(tympan.TympanError, match="already open in this process"):
        tympan.init(resume=run.id, store=store)
    run.finish()


def test_log_from_many_threads_loses_nothing(tmp_path) -> None:
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)

    def worker(offset: int) -> None:
        for i in range(5000):
            run.log({f"t{offset}": float(i)}, step=offset * 10_000 + i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    summary = tympan.load_run(run.id, store=store).summary
    assert {k: s.count for k, s in summary.items()} == {f"t{i}": 5000 for i in range(4)}


@pytest.mark.parametrize(
    ("ending", "status", "in_error"),
    [
        ("pass", "finished", None),  # forgot finish(): interpreter exit finishes and flushes
        ("raise RuntimeError('diverged at step 2999')", "failed", "diverged at step 2999"),
        ("import sys; sys.exit(3)", "finished", None),
    ],
)
def test_script_endings_record_the_right_status(tmp_path, ending, status, in_error) -> None:
    store = str(tmp_path / "s")
    script = (
        "import tympan\n"
        f"run = tympan.init(project='exit', store={store!r})\n"
        "print(run.id, flush=True)\n"
        "for i in range(3000):\n"
        "    run.log({'loss': 1.0 / (i + 1)}, step=i)\n"
        f"{ending}\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_child_env(TYMPAN_FLUSH_INTERVAL="30"), timeout=60)
    run_id = done.stdout.split()[0]
    record = tympan.load_run(run_id, store=store)
    assert record.status == status
    assert record.summary["loss"].count == 3000  # all of it, though no flush was due yet
    if in_error:
        assert in_error in record.error and "Traceback" in record.error
        assert in_error in done.stderr  # the user's own traceback is still printed


def test_a_forked_child_cannot_silently_lose_what_it_logs(tmp_path) -> None:
    store = str(tmp_path / "s")
    run = tympan.init(project="p", store=store)
    run.log({"loss": 1.0}, step=0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what logging does, then leave without cleanup
        try:
            run.log({"loss": 2.0}, step=1)
            message = "logged"
        except tympan.TympanError as exc:
            message = str(exc)
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    assert "forked child cannot log" in message and "tympan.init() in the child" in message
    run.log({"loss": 3.0}, step=2)  # the parent goes on as before
    run.finish()
    assert tympan.load_run(run.id, store=store).history("loss").values.tolist() == [1.0, 3.0]


def test_a_run_the_store_refuses_never_takes_other_runs_points_with_it(tmp_path,
                                                                       caplog) -> None:
    store = str(tmp_path / "s")
    kept = tympan.init(project="p", name="kept", store=store)
    doomed = tympan.init(project="p", name="doomed", store=store)
    for step in range(100):
        kept.log({"loss": float(step)}, step=step)
        doomed.log({"loss": float(step)}, step=step)
    kept.flush()
    with sqlite3.connect(Path(store) / "tympan.db") as other:  # another process deletes it
        other.execute("PRAGMA foreign_keys = ON")
        other.execute("DELETE FROM runs WHERE id = ?", (doomed.id,))
    with caplog.at_level(logging.ERROR, logger="tympan"):
        for step in range(100, 300):  # both runs' points meet in the same flushes
            kept.log({"loss": float(step)}, step=step)
            doomed.log({"loss": float(step)}, step=step)
            if step % 50 == 0:
                kept.flush()
        kept.finish()
    with pytest.raises(tympan.errors.RunNotFoundError):
        doomed.finish()
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and doomed.id in refused[0], refused  # said once, naming the run
    record = tympan.load_run(kept.id, store=store)
    np.testing.assert_array_equal(record.history("loss").steps, np.arange(300))
    assert record.summary["loss"].count == 300 and record.summary["loss"].max == 299.0


@pytest.mark.postgres
def test_a_forked_child_logging_its_own_run_leaves_the_parents_series_whole(
    pg_database: str,
) -> None:
    parent = tympan.init(project="p", name="parent", store=pg_database)
    for step in range(2000):
        parent.log({"loss": float(step)}, step=step)
    parent.flush()  # the engine's pool now holds idle connections a child would inherit
    pid = os.fork()
    if pid == 0:  # the child: a run of its own, as the docs advise; no cleanup on the way out
        code = 1
        try:
            child = tympan.init(project="p", name="child", store=pg_database)
            for step in range(3000):
                child.log({"acc": float(step)}, step=step)
                if step % 500 == 0:
                    child.flush()
            child.finish()
            code = 0
        finally:
            os._exit(code)
    for step in range(2000, 12_000):  # the parent keeps logging meanwhile
        parent.log({"loss": float(step)}, step=step)
        if step % 1000 == 0:
            parent.flush()
    _, status = os.waitpid(pid, 0)
    parent.finish()
    record = tympan.load_run(parent.id, store=pg_database)
    np.testing.assert_array_equal(record.history("loss").steps, np.arange(12_000))
    assert record.summary["loss"].count == 12_000
    assert os.waitstatus_to_exitcode(status) == 0
    (child,) = [r for r in tympan.find_runs(store=pg_database, project="p") if r.name == "child"]
    assert child.status == "finished"
    assert child.summary["acc"].count == 3000
