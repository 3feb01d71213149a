"""`tympan serve --engine ray` as a client sees it: a real server process that starts its own
local Ray, real HTTP, real speech, a champion/challenger split, and a replica killed
under load.

One server for the module (Ray starts once): two versions of an ASR model, one Ray Serve
replica each, 30% of requests to the challenger. The embedded engine's answers, computed in
this process from the same versions, are what the replicas must answer.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import psutil
import pytest
from tests.serving_fixtures import (
    guarded_model,
    live_serve,
    metric,
    one_thread,
    serving_corpus,
    split_waves,
)

import tympan
from tympan.serve.audio import encode_wav
from tympan.serve.fleet import challenger_share

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

pytest.importorskip("ray.serve", reason="the serve-ray extra is not installed")

THRESHOLD = 0.05
SPLIT = 30.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    corpus = serving_corpus(tmp_path_factory)
    store = str(tmp_path_factory.mktemp("serve-ray-store"))
    with one_thread():
        champion = guarded_model(store, corpus, alias="champion", seed=0)
        challenger = guarded_model(store, corpus, alias="challenger", seed=1)
    clips = [w for _, w in split_waves(corpus, "test")][:8]
    args = ("--engine", "ray", "--replicas", "1", "--challenger", challenger, "--split",
            str(SPLIT), "--threshold", str(THRESHOLD), "--sample", "0", "--max-wait-ms", "10",
            "--request-timeout", "60")
    with live_serve(store, champion, *args, timeout=180) as url, \
            httpx.Client(base_url=url, timeout=90) as client:
        yield {"url": url, "client": client, "store": store, "clips": clips,
               "expected": _embedded_answers(store, clips)}


def _embedded_answers(store: str, clips: list) -> dict[int, list]:
    """Each version's (transcript, p-value) per clip from the embedded engine."""
    from tympan.serve.engine import Engine

    out = {}
    with one_thread():
        for version in (1, 2):
            engine = Engine.load(f"models:/asr-serve/{version}", store=store,
                                 threshold=THRESHOLD)
            try:
                out[version] = [(a.answer["transcript"], a.verdict.p_value)
                                for a in (engine.answer([c])[0] for c in clips)]
            finally:
                engine.close()
    return out


def _ids(to_challenger: bool, n: int) -> list[str]:
    """Request ids the split sends to the challenger (or not)."""
    found, k = [], 0
    while len(found) < n:
        rid = f"req-{k}"
        if (challenger_share(rid) < SPLIT / 100) == to_challenger:
            found.append(rid)
        k += 1
    return found


def _post(client: httpx.Client, wave, rid: str | None = None) -> httpx.Response:
    headers = {"X-Request-Id": rid} if rid else {}
    return client.post("/v1/predict", content=encode_wav(wave, 16000), headers=headers)


def test_ray_replicas_answer_like_the_embedded_engine(fleet):
    client, clips, expected = fleet["client"], fleet["clips"], fleet["expected"]
    for role, version, ids in (("champion", 1, _ids(False, len(clips))),
                               ("challenger", 2, _ids(True, 3))):
        for i, rid in enumerate(ids):
            response = _post(client, clips[i], rid)
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["model"], body["version"], body["role"]) == ("asr-serve", version,
                                                                      role)
            assert body["request_id"] == rid == response.headers["X-Request-Id"]
            assert response.headers["X-Tympan-Version"] == f"{version} ({role})"
            transcript, p_value = expected[version][i]
            assert body["answer"]["transcript"] == transcript
            assert body["guard"]["p_value"] == pytest.approx(p_value, abs=1e-9)
    model = client.get("/v1/model").json()
    assert model["uri"] == "models:/asr-serve/1" and model["padding"] == "batch"
    assert model["serving"]["engine"] == "ray" and model["serving"]["replicas"] == 1
    runs = model["serving"]["split"]["versions"]
    assert runs["challenger"]["uri"] == "models:/asr-serve/2"
    assert runs["champion"]["serving_run"] != runs["challenger"]["serving_run"]
    assert client.get("/readyz").json() == {"ready": True}


def test_the_local_ray_listens_on_loopback_only(fleet):
    """Every TCP listener of the Ray processes the server started (GCS, raylet, agents,
    workers, the replicas and Ray Serve's controller) is on a loopback address, as
    ``ss -ltnp`` shows them."""
    server = psutil.Process(fleet["url"].pid)
    ray_pids = {p.pid for p in server.children(recursive=True)}
    listeners = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True,
                               timeout=30).stdout.splitlines()
    owned: dict[str, list[str]] = {}
    for line in listeners:
        pids = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
        if pids & ray_pids:
            names = re.findall(r'\("([^"]+)",pid=', line)
            owned.setdefault(line.split()[3], []).extend(names)
    found = " ".join(name for names in owned.values() for name in names)
    # ss shows at most 15 characters of a process name
    assert "gcs_server" in found and "raylet" in found and "ray::ServeRepli" in found, owned
    outside = {address: names for address, names in owned.items()
               if not _loopback(address.rpartition(":")[0])}
    assert not outside, f"Ray listens beyond loopback: {outside}"


def _loopback(host: str) -> bool:
    host = host.strip("[]").removeprefix("::ffff:")
    return host != "*" and ipaddress.ip_address(host).is_loopback


def test_split_sends_its_share_by_request_id(fleet):
    client, clips = fleet["client"], fleet["clips"]
    results: list[tuple[str, str]] = []

    def send(k: int) -> None:
        for i in range(15):
            response = _post(client, clips[(k + i) % len(clips)])  # the server makes the id
            assert response.status_code == 200, response.text
            body = response.json()
            results.append((body["request_id"], body["role"]))

    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 60
    # Every request went where its id says ...
    assert all(role == ("challenger" if challenger_share(rid) < SPLIT / 100 else "champion")
               for rid, role in results)
    # ... and random ids split near 30%: 18 of 60 expected, P(outside 8..28) < 0.002.
    share = sum(role == "challenger" for _, role in results)
    assert 8 <= share <= 28, share
    metrics = client.get("/metrics").text
    # Each version's series: its answers, and the share the split sends it.
    for version, role, fraction, count in (("1", "champion", 0.7, 60 - share),
                                           ("2", "challenger", 0.3, share)):
        labels = {"model": "asr-serve", "version": version, "role": role}
        assert metric(metrics, "tympan_serve_requests_total", status="200", **labels) >= count
        assert metric(metrics, "tympan_serve_traffic_share", **labels) == pytest.approx(
            fraction)


def test_killing_a_replica_mid_load_loses_no_request(fleet):
    """Every request sent gets a correct answer or an error status, within a bound."""
    client, clips, expected = fleet["client"], fleet["clips"], fleet["expected"]
    victim = _replicas(fleet["url"].pid, "champion")
    assert len(victim) == 1
    outcomes: list[tuple[str, int, bool]] = []
    lock = threading.Lock()
    started = threading.Event()

    def send(k: int) -> None:
        ids = _ids(False, 40)
        for i in range(10):
            rid, clip = f"{ids[k * 10 + i]}", (k + i) % len(clips)
            try:
                response = _post(client, clips[clip], rid)
            except httpx.HTTPError as exc:  # a hang past the client's bound or a drop
                with lock:
                    outcomes.append((rid, -1, repr(exc)))
                continue
            body = response.json()
            ok = (body["answer"]["transcript"] == expected[1][clip][0]
                  if response.status_code == 200 else body["error"]["type"])
            with lock:
                outcomes.append((rid, response.status_code, ok))
            started.set()

    t0 = time.monotonic()
    threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    assert started.wait(60)
    os.kill(victim[0], signal.SIGKILL)
    for t in threads:
        t.join(150)
    assert not any(t.is_alive() for t in threads), "a request hung"
    assert time.monotonic() - t0 < 150
    assert len(outcomes) == 40 and len({rid for rid, _, _ in outcomes}) == 40
    for rid, status, ok in outcomes:
        assert (status == 200 and ok is True) or status in (503, 504), (rid, status, ok)
    assert sum(status == 200 for _, status, _ in outcomes) >= 30
    # Ray Serve replaced the replica; the server answers again.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if _replicas(fleet["url"].pid, "champion") not in ([], victim):
            break
        time.sleep(0.5)
    response = _post(client, clips[0], _ids(False, 1)[0])
    assert response.status_code == 200, response.text


def _replicas(server: int, role: str) -> list[int]:
    """Pids of the server's Ray Serve replica processes of ``role``."""
    found = []
    for proc in psutil.Process(server).children(recursive=True):
        try:
            command = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "ServeReplica:tympan-asr-serve" in command and f"-{role}-" in command:
            found.append(proc.pid)
    return found


def test_the_embedded_engine_splits_too(fleet):
    """The same split in one process: both versions loaded side by side, each with its own
    serving run."""
    clips, expected = fleet["clips"], fleet["expected"]
    args = ("--challenger", "models:/asr-serve@challenger", "--split", str(SPLIT),
            "--threshold", str(THRESHOLD), "--sample", "0")
    sent = [(rid, 1) for rid in _ids(False, 4)] + [(rid, 2) for rid in _ids(True, 3)]
    with live_serve(fleet["store"], "models:/asr-serve@champion", *args) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        model = client.get("/v1/model").json()
        assert model["serving"]["engine"] == "embedded"
        for i, (rid, version) in enumerate(sent):
            body = _post(client, clips[i], rid).json()
            assert body["version"] == version, body
            assert body["answer"]["transcript"] == expected[version][i][0]
        runs = model["serving"]["split"]["versions"]
        os.kill(url.pid, signal.SIGTERM)
        psutil.Process(url.pid).wait(30)
    for role, count in (("champion", 4), ("challenger", 3)):
        record = tympan.load_run(runs[role]["serving_run"], store=fleet["store"])
        assert record.status == "finished"
        assert record.summary["guard/p_value"].count == count


def test_stopping_records_both_serving_runs_and_stops_ray(fleet):
    """Runs last: SIGTERM stops the server, its local Ray with it."""
    client, url = fleet["client"], fleet["url"]
    runs = client.get("/v1/model").json()["serving"]["split"]["versions"]
    ray_processes = psutil.Process(url.pid).children(recursive=True)
    assert any("raylet" in " ".join(p.cmdline()) for p in ray_processes)
    os.kill(url.pid, signal.SIGTERM)
    psutil.Process(url.pid).wait(60)
    _gone, alive = psutil.wait_procs(ray_processes, timeout=30)
    assert not alive, [p.pid for p in alive]
    counts = {}
    for role, run in runs.items():
        record = tympan.load_run(run["serving_run"], store=fleet["store"])
        assert record.status == "finished" and "serving" in record.tags
        assert record.config["serving"]["role"] == role
        assert record.config["serving"]["model"] == f"models:/asr-serve@{role}"
        counts[role] = record.summary["guard/p_value"].count
    assert counts["champion"] >= 8 + 30 and counts["challenger"] >= 3 + 8


CLUSTER = """
import json, shutil, sys, tempfile, ray
from ray import serve
temp = tempfile.mkdtemp(prefix="tyclu", dir="/tmp")
ray.init(address="local", num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False,
         _temp_dir=temp, log_to_driver=False)
print(ray.get_runtime_context().gcs_address, flush=True)
for line in sys.stdin:  # each line asks for the Serve applications on the cluster
    print(json.dumps(sorted(serve.status().applications)), flush=True)
ray.shutdown()
shutil.rmtree(temp, ignore_errors=True)
"""


def test_an_existing_cluster_is_used_and_left_running(fleet, monkeypatch):
    """--address: the server deploys to a Ray someone else started, and on exit deletes its
    application and leaves that Ray running."""
    # Ray sends its token to an explicit address only when told to, as any driver must be.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    holder = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})

    def applications() -> list[str]:
        holder.stdin.write("status\n")
        holder.stdin.flush()
        return json.loads(holder.stdout.readline())

    try:
        address = holder.stdout.readline().strip()
        assert address.rpartition(":")[2].isdigit(), address
        # A replica that cannot start: the replica's reason in one line, nothing left behind.
        failed = subprocess.run(
            [sys.executable, "-m", "tympan.cli.app", "--store", fleet["store"], "serve",
             "models:/asr-serve/2", "--engine", "ray", "--address", address, "--threshold",
             "0.001", "--no-record", "--port", "0"], capture_output=True, text=True,
            timeout=120)
        assert failed.returncode == 1
        last = failed.stderr.strip().splitlines()[-1]
        assert last.startswith("error: the replicas did not start: alpha 0.001 is below")
        assert applications() == []
        args = ("--engine", "ray", "--address", address, "--threshold", str(THRESHOLD),
                "--no-record")
        with live_serve(fleet["store"], "models:/asr-serve/2", *args, timeout=120) as url, \
                httpx.Client(base_url=url, timeout=60) as client:
            body = _post(client, fleet["clips"][0]).json()
            assert (body["version"], body["answer"]["transcript"]) == (
                2, fleet["expected"][2][0][0])
            assert client.get("/v1/model").json()["serving"]["ray_address"] == address
            assert applications() == [f"tympan-asr-serve-v2-champion-{url.pid}"]
            os.kill(url.pid, signal.SIGTERM)
            psutil.Process(url.pid).wait(60)
        assert applications() == []  # deleted, and the cluster still answers
    finally:
        holder.stdin.close()
        try:
            holder.wait(60)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        holder.stdout.close()


@pytest.mark.parametrize(("args", "words"), [
    (["--challenger", "models:/asr-serve/2", "--split", "0"], "strictly between 0 and 100"),
    (["--challenger", "models:/asr-serve/2", "--split", "100"], "strictly between 0 and 100"),
    (["--split", "10"], "go together"),
    (["--replicas", "2"], "for --engine ray"),
    (["--engine", "ray", "--address", "127.0.0.1:9"], "cannot connect to Ray"),
    (["--engine", "spark"], "engine must be one of"),
])
def test_bad_engine_and_split_options_are_refused(tmp_path, capsys, args, words):
    from tympan.cli.app import main

    store = str(tmp_path / "store")
    assert main(["--store", store, "serve", "models:/asr-serve@champion", "--no-record",
                 *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err, err
    assert len(err.strip().splitlines()) == 1


def test_only_the_ray_engine_imports_ray():
    """The embedded engine, its split and the HTTP face never load Ray."""
    script = ("import sys, tympan.serve.server, tympan.serve.fleet, tympan.serve.app, "
              "tympan.cli.serving; print(sorted(m for m in sys.modules if m == 'ray' or "
              "m.startswith('ray.')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_request_ids_spread_evenly_over_the_split():
    """The routing function: ids spread uniformly over [0, 1)."""
    shares = [challenger_share(uuid.UUID(int=k).hex) for k in range(2000)]
    assert all(0 <= s < 1 for s in shares)
    assert 0.45 < sum(shares) / len(shares) < 0.55
    assert 0.27 < sum(s < 0.3 for s in shares) / len(shares) < 0.33
