"""The disk spool against real server and client processes: a client SIGKILLed while its server
is down leaves a journal, and `tympan sync` (or the next `tympan.init`) sends it exactly once."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from tests.server_fixtures import Server, make_token, served

import tympan
from tympan.track import wire
from tympan.track.journal import Journal, Reading

CLIENT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import tympan

    folder = sys.argv[1]
    run = tympan.init(project="asr", config={"lr": 0.001})
    for step in range(300):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.flush()  # the server has these
    print(json.dumps({"run": run.id}), flush=True)
    sys.stdin.readline()  # the server is down now
    for step in range(300, 3000):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        if step % 1000 == 0:
            tone = 0.5 * np.sin(np.arange(8000) * step / 5000.0)
            run.log_audio("val/tone", tone, 16000, step=step)
            with open(f"{folder}/last.pt", "wb") as f:
                f.write(f"checkpoint at step {step}".encode())
            run.log_artifact(f"{folder}/last.pt", name=f"ckpt/step-{step}.pt")
        if step % 100 == 0:
            time.sleep(0.03)  # a few flushes: a few records
    run.flush()  # returns once everything is journaled on disk
    print(json.dumps({"journaled": True}), flush=True)
    time.sleep(600)  # SIGKILLed here
""")
STEPS = 3000


def client_env(server: Server, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TYMPAN_")}
    env.update(TYMPAN_STORE=server.url, TYMPAN_TOKEN=make_token(server.store),
               TYMPAN_SPOOL_DIR=str(tmp_path / "spool"), TYMPAN_FLUSH_INTERVAL="0.05",
               TYMPAN_CAPTURE_ENV="0", TYMPAN_SYSTEM_METRICS="0", TYMPAN_CONSOLE="0")
    return env


def log_here_like_the_client(server: Server, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in client_env(server, tmp_path).items():
        if name.startswith("TYMPAN_"):
            monkeypatch.setenv(name, value)


def killed_client(server: Server, tmp_path: Path) -> tuple[str, Path]:
    """Run CLIENT, kill the server under it, let it journal, SIGKILL it; (run id, journal)."""
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = client_env(server, tmp_path)
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        run_id = json.loads(child.stdout.readline())["run"]
        server.kill()
        child.stdin.write("\n")
        child.stdin.flush()
        line = child.stdout.readline()
        assert line, child.stderr.read()
        # A live process holds its journal: a sync lists it as in use and leaves it alone.
        listed = sync(env, "--dry-run")
        assert listed.returncode == 0, listed.stderr
        assert "in use by a live process" in listed.stdout
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)  # reaps it and closes its pipes
    found = list((tmp_path / "spool").glob("*/*/journal"))
    assert len(found) == 1, found
    return run_id, found[0].parent


def sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tympan.cli.app", "sync", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def stored_steps(server: Server, run_id: str) -> np.ndarray:
    from tympan.track.stores import close_stores

    close_stores()
    return tympan.load_run(run_id, store=server.store).history("loss").steps


def records(folder: Path) -> list:
    """A journal's records, read without its lock (a live process may hold it)."""
    return list(Journal(folder, lock_fd=-1).records(Reading(), start=0))


def record_points(record) -> int:
    return int(record.data.get("points", 0))


@pytest.mark.slow
def test_a_killed_clients_journal_is_sent_by_tympan_sync_exactly_once(tmp_path: Path) -> None:
    with served(tmp_path) as server:
        run_id, folder = killed_client(server, tmp_path)
        env = client_env(server, tmp_path)
        server.start()  # the same port, the same store
        listed = sync(env, "--dry-run")
        assert listed.returncode == 0, listed.stderr
        assert f"runs {run_id}; " in listed.stdout
        assert f"{STEPS - 300} points, 4 files" in listed.stdout  # 2 clips, 2 checkpoints
        assert folder.exists()  # --dry-run sends nothing
        assert len(stored_steps(server, run_id)) == 300

        # A sync killed after the server stored everything, before it marked it sent: kept
        # to be put back below. Meanwhile two syncs at once: one sends, the other skips it.
        copy = tmp_path / "copy"
        shutil.copytree(folder, copy)
        both = [subprocess.Popen([sys.executable, "-m", "tympan.cli.app", "sync"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in both]
        assert all(p.returncode == 0 for p in both), outs
        assert sum(f"sent {folder.name}: " in out for out, _ in outs) == 1, outs
        assert not folder.exists()
        np.testing.assert_array_equal(stored_steps(server, run_id), np.arange(STEPS))

        shutil.copytree(copy, folder)  # sent again from the start: nothing stored twice
        again = sync(env)
        assert again.returncode == 0 and f"sent {folder.name}: " in again.stdout, again
        assert "nothing waits" in sync(env).stdout

        record = tympan.load_run(run_id, store=server.store)
        np.testing.assert_array_equal(record.history("loss").steps, np.arange(STEPS))
        np.testing.assert_allclose(record.history("loss").values, 1 / (np.arange(STEPS) + 1))
        assert record.summary["loss"].count == STEPS
        assert [c.step for c in record.audio_samples()] == [1000, 2000]
        for step in (1000, 2000):
            assert (record.read_artifact(f"ckpt/step-{step}.pt")
                    == f"checkpoint at step {step}".encode())


@pytest.mark.slow
def test_a_damaged_journal_sends_its_valid_prefix_and_names_the_problem(
    tmp_path: Path,
) -> None:
    with served(tmp_path) as server:
        run_id, folder = killed_client(server, tmp_path)
        env = client_env(server, tmp_path)
        server.start()
        found = records(folder)
        metrics = [i for i, r in enumerate(found) if r.data.get("what") == "metrics"]
        bad = metrics[len(metrics) // 2]
        before = 300 + sum(record_points(r) for r in found[:bad])
        path = folder / "journal"
        original = path.read_bytes()
        pristine = tmp_path / "pristine"
        shutil.copytree(folder, pristine)
        damaged = bytearray(original)
        damaged[found[bad].start + 20] ^= 0x01  # one flipped bit in the middle of a record
        path.write_bytes(bytes(damaged))

        out = sync(env)
        assert out.returncode == 1
        assert f"the record at byte {found[bad].start} is damaged" in out.stderr
        assert f"the {bad} records before it were sent" in out.stderr
        aside = folder.with_name(folder.name + ".damaged")
        assert aside.exists() and not folder.exists()  # never sent again by a later sync
        assert f"kept aside, damaged (not sent again; look, then delete): {aside}" in (
            sync(env).stdout)
        np.testing.assert_array_equal(stored_steps(server, run_id), np.arange(before))

        # Killed while appending: the last record is cut short. The records before it are
        # sent, the problem is named, and the journal is removed.
        shutil.rmtree(aside)
        shutil.copytree(pristine, folder)
        last = found[-1]
        (folder / "journal").write_bytes(original[:last.start + (last.end - last.start) // 2])
        out = sync(env)
        assert out.returncode == 0, out.stderr
        assert "its last record is cut short" in out.stderr
        assert not folder.exists()
        every = 300 + sum(record_points(r) for r in found[:-1])
        np.testing.assert_array_equal(stored_steps(server, run_id), np.arange(every))


@pytest.mark.slow
def test_the_next_init_sends_what_a_killed_client_left_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with served(tmp_path) as server:
        run_id, folder = killed_client(server, tmp_path)
        server.start()
        log_here_like_the_client(server, tmp_path, monkeypatch)
        with caplog.at_level(logging.WARNING, logger="tympan"), tympan.init(project="asr") as run:
            run.log({"loss": 1.0})
            deadline = time.monotonic() + 60
            while folder.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        said = [r.getMessage() for r in caplog.records if "earlier processes left" in r.message]
        assert len(said) == 1 and "in the background" in said[0], caplog.text
        assert not folder.exists()
        np.testing.assert_array_equal(stored_steps(server, run_id), np.arange(STEPS))


@pytest.mark.slow
def test_resuming_a_killed_run_sends_its_journal_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The resumed run numbers its new chunks after the journaled ones, which the server
    must hold by then: otherwise the new chunks would take their numbers and the journaled
    points be skipped as already stored."""
    with served(tmp_path) as server:
        run_id, folder = killed_client(server, tmp_path)
        server.start()
        log_here_like_the_client(server, tmp_path, monkeypatch)
        with caplog.at_level(logging.WARNING, logger="tympan"):
            run = tympan.init(resume=run_id)
        assert "earlier processes left on disk" in caplog.text and "first" in caplog.text
        assert not folder.exists()
        for step in range(STEPS, STEPS + 100):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.finish(timeout=60)
        np.testing.assert_array_equal(stored_steps(server, run_id), np.arange(STEPS + 100))


@pytest.mark.slow
def test_a_full_disk_spool_warns_keeps_the_oldest_and_the_newest_wait_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    with served(tmp_path) as server:
        log_here_like_the_client(server, tmp_path, monkeypatch)
        monkeypatch.setenv("TYMPAN_SPOOL_DISK_MB", "1")
        total = 120_000  # about 4 MiB of journal records: more than 1 MiB
        with caplog.at_level(logging.WARNING, logger="tympan"):
            run = tympan.init(project="asr")
            run.log({"loss": 0.0}, step=0)
            run.flush()
            server.kill()
            for step in range(1, total):
                run.log({"loss": float(step)}, step=step)
                if step % 5_000 == 0:
                    time.sleep(0.1)  # flushes: journal records, until the journal is full
            deadline = time.monotonic() + 30
            while "TYMPAN_SPOOL_DISK_MB=1 allows" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.1)
            (folder,) = [p.parent for p in (tmp_path / "spool").glob("*/*/journal")]
            kept = records(folder)
            assert kept and (folder / "journal").stat().st_size < 2 << 20  # bounded
            first = kept[0].data["body"]["runs"][0]["chunks"][0]
            assert wire.unarray(first["steps"], wire.STEP, "steps")[0] == 1  # the oldest
            server.start()
            run.finish(timeout=60)
        full = [r for r in caplog.records if "newer points wait in memory" in r.message]
        assert len(full) == 1, caplog.text  # warned once
        assert "TYMPAN_SPOOL_DISK_MB=1 allows" in full[0].message
        assert not folder.exists()  # sent by the process once the server was back
        np.testing.assert_array_equal(stored_steps(server, run.id), np.arange(total))


def test_a_journal_is_held_by_one_process_at_a_time_and_reads_up_to_damage(
    tmp_path: Path,
) -> None:
    server_dir = tmp_path / "spool" / "server"
    journal = Journal.create(server_dir, "http://127.0.0.1:1")
    calls = [({"op": "call", "method": "POST", "path": f"/p/{i}", "body": {"i": i}}, None)
             for i in range(3)]
    journal.append([({"op": "blob", "sha256": "ab" * 32, "size": 5}, b"bytes"), *calls])
    assert journal.blob_path("ab" * 32).read_bytes() == b"bytes"
    assert Journal.claim(journal.folder) is None  # held by its writer (even in this process)

    path = journal.folder / "journal"
    found = records(journal.folder)
    assert [r.data["op"] for r in found] == ["blob", "call", "call", "call"]
    whole = path.read_bytes()
    path.write_bytes(whole[:found[2].start + 5] + b"x" + whole[found[2].start + 6:])
    reading = Reading()
    assert len(list(journal.records(reading, start=0))) == 2
    assert f"the record at byte {found[2].start} is damaged" in reading.problem
    assert not reading.cut_short
    path.write_bytes(whole[:-3])
    reading = Reading()
    assert len(list(journal.records(reading, start=0))) == 3 and reading.cut_short

    journal.remove()
    assert not journal.folder.exists()
    journal.folder.mkdir()  # a sync's lock file, made as the journal was being removed
    (journal.folder / "lock").touch()
    assert Journal.claim(journal.folder) is None and not journal.folder.exists()


# A study trial whose server "goes down" (the proxy refuses its writes) once it has checked its
# token: its run and points go to the disk spool, and it exits before the server is back.
SPOOLED_TRIAL = textwrap.dedent("""
    import os, pathlib, sys
    import tympan

    args = dict(a.split("=", 1) for a in sys.argv[1:])
    with tympan.init(project="toy", config=args) as run:
        run.log({"test/wer": 0.5 - 0.1 * (args["enc"] == "b") + 0.01 * int(args["seed"])})
    if os.environ.get("TRIAL_BRINGS_BACK"):
        pathlib.Path(os.environ["SERVER_BACK"]).touch()  # the server is back once this exits
""")
SPOOLED_STUDY = """\
name: toy
command: python trial.py
factors:
  enc: {levels: [a, b], baseline: a}
seeds: 2
metrics:
  - {name: wer, split: test, direction: lower}
"""


@pytest.mark.parametrize("back", ["when the trial exits", "after the study"])
def test_a_study_trial_whose_run_went_to_the_disk_spool_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, back: str,
) -> None:
    """Back when the trial exits: the runner sends the trial's journal and counts it. Back
    only after the study: the trials are spooled (pending sync), said so, and the next
    ``run_study`` sends them and counts the trials without running them again."""
    from tests.lossy_proxy import lossy_proxy

    from tympan.study.runner import run_study
    from tympan.study.spec import load_study
    from tympan.track.sync import waiting

    (tmp_path / "trial.py").write_text(SPOOLED_TRIAL)
    (tmp_path / "study.yaml").write_text(SPOOLED_STUDY)
    up = tmp_path / "back"
    refused: list[str] = []

    def down_for_trials(method: str, path: str, body: bytes) -> str:
        if not path.startswith("/api/ingest/") or path.startswith("/api/ingest/access"):
            return "forward"  # the runner's study records, and the trial's token check
        if up.exists():
            return "forward"
        refused.append(path)
        return "refuse"

    with served(tmp_path / "server") as server, lossy_proxy(server.url, down_for_trials) as url:
        for key, value in client_env(server, tmp_path).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SERVER_BACK", str(up))
        if back == "when the trial exits":
            monkeypatch.setenv("TRIAL_BRINGS_BACK", "1")

        def trial_ran(event) -> None:
            if event.event != "start":
                up.unlink(missing_ok=True)  # down again for the next trial

        study = load_study(tmp_path / "study.yaml")
        stored = run_study(study, store=url, workers=1, on_progress=trial_ran)
        assert refused  # the trials' runs really went to the spool
        if back == "after the study":
            first = stored.current_trials()
            assert {t.status for t in first} == {"crashed"}
            assert all(t.error.startswith("spooled: its run waits in the disk spool ")
                       and "(pending sync)" in t.error for t in first)
            assert len(waiting(url)) == 4
            up.touch()
            stored = run_study(study, store=url, workers=1)
            assert [t.run_id for t in stored.current_trials()] == [t.run_id for t in first]
        trials = stored.current_trials()
        assert [(t.status, t.error) for t in trials] == [("finished", None)] * 4
        assert waiting(url) == []  # the runner sent what the trials left on disk
        for trial in trials:
            record = tympan.load_run(trial.run_id, store=server.store)
            assert record.status == "finished" and record.summary["test/wer"].count == 1
