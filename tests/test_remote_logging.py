"""Remote logging against a real ``tympan server`` process: tokens, idempotent retries, and a
server SIGKILLed and restarted while a training script keeps logging to it."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.lossy_proxy import lossy_proxy
from tests.server_fixtures import Server, make_token, served

import tympan
from tympan.store import open_store, runs, summaries


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with served(tmp_path_factory.mktemp("remote")) as running:
        yield running


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    from tympan.track.stores import close_stores

    close_stores()  # this process's keep-alive connections to the servers


@pytest.fixture
def remote(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """This process logs to ``server`` with a write token for every project."""
    monkeypatch.setenv("TYMPAN_STORE", server.url)
    monkeypatch.setenv("TYMPAN_TOKEN", make_token(server.store))
    return server


TRAINING = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import tympan

    outage_seconds, folder = float(sys.argv[1]), sys.argv[2]
    run = tympan.init(project="asr", config={"lr": 0.001}, tags=["remote"])
    step = 0

    def train(seconds, costs):
        global step
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            run.log({"loss": 1.0 / (step + 1), "step_copy": float(step)}, step=step)
            costs.append(time.perf_counter() - started)
            if step % 500 == 0:
                started = time.perf_counter()
                tone = 0.5 * np.sin(np.arange(8000) * (step + 1) / 5000.0)
                run.log_audio("val/tone", tone, 16000, step=step, caption=f"step {step}")
                path = f"{folder}/last.pt"
                with open(path, "wb") as f:
                    f.write(f"checkpoint at step {step}".encode())
                run.log_artifact(path, name=f"ckpt/step-{step}.pt")
                costs.append(time.perf_counter() - started)
            step += 1
            time.sleep(0.0005)

    train(1.0, [])
    run.flush()  # the server has acknowledged these
    print(json.dumps({"run": run.id, "acked": step}), flush=True)
    sys.stdin.readline()  # the server is being killed now
    down = []
    train(outage_seconds, down)  # keep training while the server is down
    print(json.dumps({"down_steps": step}), flush=True)
    sys.stdin.readline()  # the server is back
    train(0.5, [])
    run.log_artifact(b"final notes", name="notes.txt")
    run.finish()
    print(json.dumps({"steps": step, "max_cost": max(down), "mean_cost": sum(down) / len(down)}),
          flush=True)
""")


@pytest.mark.slow
def test_training_survives_the_server_being_killed_and_restarted(tmp_path: Path) -> None:
    with served(tmp_path) as server:
        script = tmp_path / "train.py"
        script.write_text(TRAINING)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TYMPAN_")}
        env.update(TYMPAN_STORE=server.url, TYMPAN_TOKEN=make_token(server.store, project="asr"),
                   TYMPAN_CAPTURE_ENV="0", TYMPAN_FLUSH_INTERVAL="0.2",
                   TYMPAN_SYSTEM_METRICS="0", TYMPAN_CONSOLE="0",
                   TMPDIR=str(tmp_path / "tmp"), TYMPAN_SPOOL_DIR=str(tmp_path / "spool"))
        (tmp_path / "tmp").mkdir()
        child = subprocess.Popen([sys.executable, str(script), "2.0", str(tmp_path)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        try:
            first = json.loads(child.stdout.readline())
            run_id = first["run"]
            server.kill()  # SIGKILL: no graceful shutdown, requests in flight are cut
            child.stdin.write("\n")
            child.stdin.flush()
            during = json.loads(child.stdout.readline())
            server.start()  # the same port, the same store
            child.stdin.write("\n")
            child.stdin.flush()
            out, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
        assert child.returncode == 0, err
        last = json.loads(out.strip().splitlines()[-1])
        assert during["down_steps"] > first["acked"] + 100  # it really logged during the outage
        # log() stayed cheap while the server was down: it never waited for the network.
        assert last["mean_cost"] < 0.002 and last["max_cost"] < 0.5, last
        assert err.count("training goes on: what it logs is journaled on disk") == 1, err
        assert "is back; sent what was journaled on disk" in err
        assert not list((tmp_path / "spool").rglob("journal"))  # sent by the process itself

        record = tympan.load_run(run_id, store=server.store)
        assert record.status == "finished"
        steps = last["steps"]
        loss = record.history("loss")
        np.testing.assert_array_equal(loss.steps, np.arange(steps))  # every point, once
        np.testing.assert_allclose(loss.values, 1.0 / (np.arange(steps) + 1))
        np.testing.assert_array_equal(record.history("step_copy").values, np.arange(steps))
        assert record.summary["loss"].count == steps
        assert record.summary["loss"].min == pytest.approx(1.0 / steps)

        clip_steps = list(range(0, steps, 500))
        clips = record.audio_samples()
        assert [c.step for c in clips] == clip_steps  # each clip once, none lost
        samples, rate, caption = record.read_audio("val/tone", step=clip_steps[-1])
        expected = 0.5 * np.sin(np.arange(8000) * (clip_steps[-1] + 1) / 5000.0)
        assert rate == 16000 and caption == f"step {clip_steps[-1]}"
        np.testing.assert_allclose(samples, expected, atol=1e-4)
        for s in clip_steps:  # each checkpoint as it was when logged, though since overwritten
            assert record.read_artifact(f"ckpt/step-{s}.pt") == f"checkpoint at step {s}".encode()
        assert record.read_artifact("notes.txt") == b"final notes"
        assert not list((tmp_path / "tmp").iterdir())  # staged copies all uploaded, removed


def test_a_bad_or_missing_token_fails_at_init_with_a_clear_message(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TYMPAN_STORE", server.url)
    monkeypatch.setenv("TYMPAN_TOKEN", "tympan_000000000000_not-a-real-secret")
    started = time.monotonic()
    with pytest.raises(tympan.TympanError, match="answered 401: invalid token.*TYMPAN_TOKEN"):
        tympan.init(project="asr")
    assert time.monotonic() - started < 5  # at once, no retrying a refusal
    monkeypatch.delenv("TYMPAN_TOKEN")
    with pytest.raises(tympan.TympanError, match="requires a token.*Set TYMPAN_TOKEN"):
        tympan.init(project="asr")
    monkeypatch.setenv("TYMPAN_TOKEN", make_token(server.store, scope="read"))
    with pytest.raises(tympan.TympanError, match="answered 403.*scope write"):
        tympan.init(project="asr")
    assert tympan.active_run() is None


def test_an_unreachable_server_fails_at_init(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    monkeypatch.setenv("TYMPAN_STORE", f"http://127.0.0.1:{port}")
    with pytest.raises(tympan.errors.StoreUnavailableError, match="cannot reach the tympan "
                                                                  "server.*is it running"):
        tympan.init(project="asr")


def test_a_project_token_cannot_write_another_project(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TYMPAN_STORE", server.url)
    monkeypatch.setenv("TYMPAN_TOKEN", make_token(server.store))
    other = tympan.init(project="tts")
    other.log({"loss": 1.0})
    other.finish()
    asr_token = make_token(server.store, project="asr")
    monkeypatch.setenv("TYMPAN_TOKEN", asr_token)
    with pytest.raises(tympan.TympanError, match="cannot log runs of project 'tts'"):
        tympan.init(project="tts")
    with pytest.raises(tympan.errors.NotFoundError):
        tympan.init(resume=other.id)  # another project's run is not there for this token
    headers = {"Authorization": f"Bearer {asr_token}"}
    body = metrics_body(other.id, seq=5, steps=[7], values=[2.0])
    answer = httpx.post(f"{server.url}/api/ingest/metrics", json=body, headers=headers)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["type"] == "NotFoundError"
    answer = httpx.post(f"{server.url}/api/ingest/runs/{other.id}/finish", headers=headers,
                        json={"status": "failed", "ended_at": time.time()})
    assert answer.status_code == 404
    record = tympan.load_run(other.id, store=server.store)
    assert record.status == "finished" and record.summary["loss"].count == 1
    run = tympan.init(project="asr")  # its own project: fine
    run.finish()


def metrics_body(run_id: str, seq: int, steps: list[int], values: list[float]) -> dict:
    def b64(array: np.ndarray) -> str:
        return base64.b64encode(array.tobytes()).decode()

    n = len(steps)
    return {"now": time.time(), "live": [run_id], "runs": [{
        "run_id": run_id,
        "chunks": [{"key": "loss", "seq": seq, "steps": b64(np.array(steps, "<i8")),
                    "values": b64(np.array(values, "<f8")),
                    "times": b64(np.full(n, time.time(), "<f8"))}],
        "summaries": {"loss": {"last": values[-1], "last_step": steps[-1], "count": n,
                               "min": "nan", "max": "inf"}},
    }]}


def test_a_retried_request_is_stored_once(remote: Server) -> None:
    run = tympan.init(project="asr")
    run.flush()
    headers = {"Authorization": f"Bearer {os.environ['TYMPAN_TOKEN']}"}
    url = remote.url
    body = metrics_body(run.id, seq=0, steps=[0, 1, 2], values=[3.0, 2.0, 1.0])
    for _ in range(2):  # the first response "was lost": the client sends it again
        answer = httpx.post(f"{url}/api/ingest/metrics", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
    data = b"weights"
    sha = hashlib.sha256(data).hexdigest()
    bad = httpx.put(f"{url}/api/ingest/blobs/{sha}", content=b"weightz", headers=headers)
    assert bad.status_code == 400 and "sha256" in bad.json()["error"]["message"]
    early = httpx.post(f"{url}/api/ingest/runs/{run.id}/artifacts", headers=headers,
                       json={"path": "w.bin", "sha256": sha, "size": 7,
                             "media_type": "application/octet-stream",
                             "created_at": time.time()})
    assert early.status_code == 400 and "PUT /api/ingest/blobs" in early.text
    audio = {"key": "tone", "step": 3, "sha256": sha, "size": len(data), "sample_rate": 16000,
             "frames": 10, "duration": 10 / 16000, "channels": 1, "peak": 0.5, "gain": 1.0,
             "created_at": time.time()}
    for _ in range(2):
        assert httpx.put(f"{url}/api/ingest/blobs/{sha}", content=data,
                         headers=headers).status_code == 200
        assert httpx.post(f"{url}/api/ingest/runs/{run.id}/audio", json=audio,
                          headers=headers).status_code == 200
    assert httpx.get(f"{url}/api/ingest/blobs/{sha}", headers=headers).json()["exists"]
    run.finish()
    record = tympan.load_run(run.id, store=remote.store)
    assert record.history("loss").values.tolist() == [3.0, 2.0, 1.0]
    assert record.summary["loss"].max == float("inf")  # non-finite numbers survive the trip
    assert len(record.audio_samples()) == 1
    done = httpx.post(f"{url}/api/ingest/metrics", headers=headers,
                      json=metrics_body(run.id, seq=9, steps=[5], values=[1.0]))
    assert done.status_code == 409  # a finished run takes no stale points


def test_the_client_api_works_the_same_over_http(remote: Server, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "model" / "weights.bin").write_bytes(os.urandom(3 << 20))  # > one check
    with tympan.init(project="asr", config={"encoder": "gru"}, name="over-http") as run:
        tympan.seed_everything(7)
        for step in range(3000):
            run.log({"loss": 1.0 / (step + 1), "odd": float("nan") if step % 2 else 1.0})
        run.log_artifact(tmp_path / "model")
        assert run.summary["loss"].count == 3000  # read back from the server
        assert run.summary["odd"].nan_count == 1500
    resumed = tympan.init(resume="over-http")  # by name, over HTTP
    assert resumed.id == run.id and resumed.step == 3000
    resumed.log({"loss": 0.5})
    resumed.finish()
    record = tympan.load_run(run.id, store=remote.store)
    assert (record.status, record.seed, record.config, record.name) == (
        "finished", 7, {"encoder": "gru"}, "over-http")
    assert record.summary["loss"].count == 3001 and record.summary["loss"].last_step == 3000
    assert record.read_artifact("model/weights.bin") == (
        tmp_path / "model" / "weights.bin").read_bytes()
    over_http = tympan.load_run(run.id)  # TYMPAN_STORE, the server: read through its API
    assert repr(over_http) == repr(record) and over_http.store is None
    assert over_http.read_artifact("model/weights.bin") == record.read_artifact(
        "model/weights.bin")


def test_init_prints_where_to_watch_the_run_and_config_changes_go_over_http(
    remote: Server, capsys: pytest.CaptureFixture[str],
) -> None:
    with tympan.init(project="asr", config={"lr": 1e-3}) as run:
        run.config["lr"] = 3e-4
        run.config.update(batch=16)
    assert f"{remote.url}/runs/{run.id}" in capsys.readouterr().err
    assert tympan.load_run(run.id, store=remote.store).config == {"lr": 3e-4, "batch": 16}


def test_images_and_tables_are_logged_over_http_and_checked_by_the_server(
    remote: Server,
) -> None:
    from tympan.track.image import png
    from tympan.track.table import Table, encode

    pixels = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    with tympan.init(project="asr") as run:
        run.log_image("attention", pixels, step=4, caption="utt 1")
        run.log_image("attention", pixels, step=4, caption="utt 1")  # the same, again
        run.log_table("errors", [["u1", 0.5, float("nan")]], columns=["utt", "wer", "cer"])
    resumed = tympan.init(resume=run.id)
    resumed.update_config({"lr": 0.5, "model": {"encoder": "gru"}})  # over HTTP
    resumed.finish()
    record = tympan.load_run(run.id, store=remote.store)
    assert record.config == {"lr": 0.5, "model": {"encoder": "gru"}}
    (image,) = record.images()
    assert (image.key, image.step, image.caption, image.info) == (
        "attention", 4, "utt 1", {"width": 8, "height": 6, "mode": "RGB"})
    assert record.read_image("attention") == png(pixels)
    table = record.read_table("errors")
    assert table.rows[0][:2] == ["u1", 0.5] and math.isnan(table.rows[0][2])

    # The server checks that a record describes the file it points at.
    headers = {"Authorization": f"Bearer {os.environ['TYMPAN_TOKEN']}"}
    other = tympan.init(project="asr")
    other.flush()

    def send(kind: str, data: bytes, info: dict) -> httpx.Response:
        sha = hashlib.sha256(data).hexdigest()
        httpx.put(f"{remote.url}/api/ingest/blobs/{sha}", content=data, headers=headers)
        return httpx.post(f"{remote.url}/api/ingest/runs/{other.id}/media", headers=headers,
                          json={"kind": kind, "key": "k", "step": 0, "sha256": sha,
                                "size": len(data), "info": info, "created_at": time.time()})

    assert send("image", png(pixels), {"width": 8, "height": 6, "mode": "RGB"}).is_success
    wrong = send("image", png(pixels), {"width": 9, "height": 6, "mode": "RGB"})
    assert wrong.status_code == 400 and "info says 9x6, the PNG is 8x6" in wrong.text
    not_png = send("image", b"GIF89a...", {"width": 1, "height": 1, "mode": "L"})
    assert not_png.status_code == 400 and "not a PNG" in not_png.text
    file = encode(Table(["a"], ["number"], [[1]]))
    lying = send("table", file, {"columns": ["a"], "types": ["number"], "rows": 2})
    assert lying.status_code == 400 and "does not describe" in lying.text
    mixed = send("table", file, {"width": 1, "height": 1, "mode": "L"})
    assert mixed.status_code == 422 and "columns, types, rows" in mixed.text
    other.finish()
    assert len(tympan.load_run(other.id, store=remote.store).images()) == 1


@pytest.mark.postgres
def test_a_team_server_on_postgresql_with_fsspec_artifacts(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tympan server --store postgresql+psycopg://... --artifacts file://...`, logged to over
    HTTP: the points land in PostgreSQL and the files under the artifact root."""
    artifacts = tmp_path / "artifacts"
    server = Server(pg_database, tmp_path)
    server.start_with(["--artifacts", artifacts.as_uri()])
    try:
        monkeypatch.setenv("TYMPAN_STORE", server.url)
        monkeypatch.setenv("TYMPAN_TOKEN", make_token(pg_database, project="tts"))
        wave = np.sin(np.linspace(0, 400, 16000)).astype(np.float32) * 0.5
        with tympan.init(project="tts", config={"vocoder": "hifigan"}) as run:
            for step in range(500):
                run.log({"mel_loss": 2.0 / (step + 1)}, step=step)
            run.log_audio("val/sample", wave, 16000, step=499, caption="a sine")
            run.log_artifact(b"weights", name="model.pt")
        record = tympan.load_run(run.id, store=pg_database)
        assert record.status == "finished" and record.summary["mel_loss"].count == 500
        assert record.history("mel_loss").values[-1] == pytest.approx(2.0 / 500)
        assert record.read_artifact("model.pt") == b"weights"
        clip = record.read_audio("val/sample")
        assert np.abs(clip[0] - wave).max() < 1e-3
        assert any(artifacts.rglob("*")), "blobs go under the --artifacts root"
    finally:
        server.stop()


def test_a_run_the_server_refuses_never_takes_other_runs_points_with_it(
    remote: Server, caplog: pytest.LogCaptureFixture
) -> None:
    kept = tympan.init(project="isolation", name="kept")
    ended = tympan.init(project="isolation", name="ended-elsewhere")
    for step in range(100):
        kept.log({"loss": float(step)}, step=step)
        ended.log({"loss": float(step)}, step=step)
    kept.flush()
    with open_store(remote.store) as store, store.write() as conn:  # another client ends it
        runs.set_status(conn, ended.id, "finished", time.time(), None)
    with caplog.at_level(logging.ERROR, logger="tympan"):
        for step in range(100, 300):
            kept.log({"loss": float(step)}, step=step)
            ended.log({"loss": float(step)}, step=step)
            if step % 50 == 0:
                kept.flush()
        kept.finish()
    ended.finish()
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and ended.id in refused[0] and "409" in refused[0], refused
    with open_store(remote.store) as store:
        with store.read() as conn:
            stored = summaries.for_runs(conn, [kept.id, ended.id])
        assert stored[kept.id]["loss"].count == 300
        assert stored[ended.id]["loss"].count == 100  # only what the server holds
    record = tympan.load_run(kept.id, store=remote.store)
    np.testing.assert_array_equal(record.history("loss").steps, np.arange(300))
    assert len(tympan.load_run(ended.id, store=remote.store).history("loss")) == 100


def test_files_logged_over_http_wait_in_memory_when_the_outbox_disk_is_full(
    remote: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.disk_fixtures import mounted_small_disk

    with mounted_small_disk(tmp_path) as disk:
        monkeypatch.setattr(tempfile, "tempdir", str(disk.path))  # the outbox goes there
        run = tympan.init(project="outbox")
        disk.fill()
        checkpoint = tmp_path / "last.pt"
        checkpoint.write_bytes(b"weights" * 50_000)
        run.log_artifact(checkpoint)  # its staged copy cannot be written: kept in memory
        checkpoint.write_bytes(b"overwritten")
        run.finish()
    record = tympan.load_run(run.id, store=remote.store)
    assert record.read_artifact("last.pt") == b"weights" * 50_000


# A client logging through a proxy that loses answers, with a disk spool it cannot create:
# what it could not send stays in its memory and is sent again, on the writer's next tick.
# Ticks 2 s apart: the points of one batch, logged in a few milliseconds, are one unit.
LOSSY_CLIENT = textwrap.dedent("""
    import os, sys
    import tympan

    run = tympan.init(project="asr")
    print(run.id, flush=True)
    for step in range(int(sys.argv[1])):
        run.log({"loss": float(step)}, step=step)
    if len(sys.argv) > 2:  # then a second batch, once the first has been tried
        try:
            run.flush(timeout=3)
        except TimeoutError:
            pass
        for step in range(int(sys.argv[1]), int(sys.argv[2])):
            run.log({"loss": float(step)}, step=step)
        open(os.environ["SERVER_BACK"], "w").close()
    run.finish(timeout=60)
""")


def run_lossy_client(server: Server, tmp_path: Path, policy: Callable, *args: str,
                     **settings: str) -> str:
    """Run LOSSY_CLIENT through a lossy proxy; the id of its run."""
    (tmp_path / "a-file").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TYMPAN_")}
    env |= dict(TYMPAN_TOKEN=make_token(server.store, project="asr"), TYMPAN_CAPTURE_ENV="0",
                TYMPAN_SYSTEM_METRICS="0", TYMPAN_CONSOLE="0", TYMPAN_FLUSH_INTERVAL="2",
                TYMPAN_SPOOL_DIR=str(tmp_path / "a-file" / "spool"),  # cannot be created
                SERVER_BACK=str(tmp_path / "back"), **settings)
    with lossy_proxy(server.url, policy) as url:
        done = subprocess.run([sys.executable, "-c", LOSSY_CLIENT, *args], env=env | {
            "TYMPAN_STORE": url}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cannot write the disk spool" in done.stderr or "set TYMPAN_SPOOL_DIR" in done.stderr
    return done.stdout.split()[0]


def metric_writes(body: bytes) -> bool:
    return b'"chunks":[{' in body  # not a heartbeat


def test_a_lost_answer_with_no_disk_spool_stores_each_point_once(server: Server,
                                                                 tmp_path: Path) -> None:
    lost: list[bytes] = []

    def lose_the_first_write(method: str, path: str, body: bytes) -> str:
        if path == "/api/ingest/metrics" and metric_writes(body) and not lost:
            lost.append(body)
            return "lose"  # stored by the server; the client hears nothing and sends it again
        return "forward"

    run_id = run_lossy_client(server, tmp_path, lose_the_first_write, "3000")
    assert lost
    record = tympan.load_run(run_id, store=server.store)
    np.testing.assert_array_equal(record.history("loss").steps, np.arange(3000))
    assert record.summary["loss"].count == 3000


def test_a_sent_unit_dropped_from_memory_keeps_its_seq_used(server: Server,
                                                            tmp_path: Path) -> None:
    """The first 500 points reach the server but not their answer; the server then looks down
    while 1,500 more are logged, and the spool limit (1,000 points) drops the first 500 from
    memory. The 1,500 must go under a new seq, not the one the server holds (which it skips)."""
    lost: list[bytes] = []

    def lose_then_look_down(method: str, path: str, body: bytes) -> str:
        if path != "/api/ingest/metrics" or not metric_writes(body):
            return "forward"
        if not lost:
            lost.append(body)
            return "lose"
        return "forward" if (tmp_path / "back").exists() else "refuse"

    run_id = run_lossy_client(server, tmp_path, lose_then_look_down, "500", "2000",
                              TYMPAN_SPOOL_POINTS="1000")
    assert lost
    record = tympan.load_run(run_id, store=server.store)
    np.testing.assert_array_equal(record.history("loss").steps, np.arange(2000))
