"""Security of a real server process over a populated store.

- schemathesis generates requests from the live OpenAPI spec: no input gives a 5xx, with auth
  off (every route) and on (a read token, on the routes it may call);
- artifact, audio and static routes reject path traversal (``..``, ``%2e%2e``, absolute paths);
- a project-bound token cannot read another project's runs, metrics, artifacts or audio: they
  answer 404 with the same message as something that does not exist;
- every API route but health/whoami/session needs a token (`tympan ui`'s too); write routes
  refuse a read token;
- oversized request bodies get a JSON 413.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from tests.server_fixtures import ServerURL, live_server

import tympan
from tympan.store import media, open_store, tokens
from tympan.track.stores import close_stores

SECRET = b"TOP-SECRET-BYTES-of-the-other-project"
PUBLIC_ROUTES = {"/api/health", "/api/whoami", "/api/session"}
# MLflow's protocol searches with POST: reads that need scope read, not write.
READ_POSTS = {"/api/2.0/mlflow/experiments/search", "/api/2.0/mlflow/runs/search",
              "/api/2.0/mlflow/logged-models/search"}
LIMIT_MB = 1
EXAMPLES = 5  # per operation and generation mode: the whole check stays well under 60 s


@dataclass
class World:
    store: str
    asr_run: str
    secret_run: str
    asr_sample: int
    secret_sample: int
    items: dict[str, dict[str, int]]  # run id -> its image_id and table_id
    read: str  # a read token for every project
    read_asr: str  # a read token for project asr only
    write_asr: str  # a write token for project asr only
    auth_url: ServerURL  # `tympan server` (auth on, 1 MiB body limit)
    open_url: ServerURL  # `tympan ui` (its launch token)


def _tone(seconds: float, freq: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _populate(where: str) -> tuple[str, str]:
    ids = []
    for project, payload in (("asr", b"hello from asr"), ("secret", SECRET)):
        run = tympan.init(project=project, store=where, name=f"{project}-run",
                          config={"model": {"encoder": "gru"}, "lr": 0.01, "seed": 1},
                          tags=["baseline"])
        for step in range(200):
            run.log({"train/loss": 1.0 / (step + 1), "valid/wer": 0.5 - step / 1000},
                    step=step)
        run.log_artifact(payload, name="notes/readme.txt")
        run.log_audio("eval/utt1", _tone(0.5, 220 if project == "asr" else 440), 16000,
                      step=10, caption=f"{project} sample")
        run.log_image("eval/attention", np.eye(4), step=10, caption=f"{project} image")
        run.log_table("eval/errors", [[project, 0.5]], columns=["utt", "wer"], step=10)
        run.finish()
        ids.append(run.id)
    close_stores()
    return ids[0], ids[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    where = str(tmp_path_factory.mktemp("security") / "store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TYMPAN_CAPTURE_ENV", "0")
        mp.delenv("TYMPAN_STORE", raising=False)
        asr_run, secret_run = _populate(where)
    with open_store(where) as store:
        with store.write() as conn:
            read, _ = tokens.create(conn, "read", name="reader")
            read_asr, _ = tokens.create(conn, "read", project="asr", name="asr reader")
            write_asr, _ = tokens.create(conn, "write", project="asr", name="asr writer")
        with store.read() as conn:
            from tympan.store.schema import audio_samples

            samples = dict(conn.execute(audio_samples.select().with_only_columns(
                audio_samples.c.run_id, audio_samples.c.id)).all())
            items: dict[str, dict[str, int]] = {}
            for run_id in (asr_run, secret_run):
                for item in media.for_run(conn, run_id):
                    items.setdefault(run_id, {})[f"{item.kind}_id"] = item.id
    with live_server(where, extra_args=["--max-body-mb", str(LIMIT_MB)]) as auth_url, \
            live_server(where, auth=False) as open_url:
        yield World(where, asr_run, secret_run, samples[asr_run], samples[secret_run], items,
                    read, read_asr, write_asr, auth_url, open_url)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _raw_get(base: str, raw_path: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
    """GET exactly ``raw_path``, byte for byte (no client-side normalisation of ``..``)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", raw_path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("content-type") or ""
    finally:
        conn.close()


def _spec_paths(world: World) -> dict[str, dict]:
    return httpx.get(f"{world.open_url}/openapi.json").json()["paths"]


def _fill(path: str, world: World, run_id: str, sample_id: int | None = None) -> str:
    """``path`` with ids filled in; with ``sample_id`` (the other project's), its other item
    ids are the other project's too."""
    sample = world.asr_sample if sample_id is None else sample_id
    owner = world.asr_run if sample_id is None else world.secret_run
    values = {"run_id": run_id, "sample_id": str(sample), "key": "train/loss",
              "path": "notes/readme.txt", "study": "nothing",
              **{name: str(i) for name, i in world.items[owner].items()}}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


# ---------------------------------------------------------------------------------------------
# schemathesis: no generated input makes the server fail


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(world: World) -> None:
    """Each generated request goes to `tympan ui` with its launch token and, when a read
    token may make it, to `tympan server` with one: generating the requests, not sending
    them, is what takes the time. A read token's writes are refused before their input is
    read (the scope test below)."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_url(f"{world.open_url}/openapi.json")
    real_ids = {"run_id": [world.asr_run, world.secret_run],
                "sample_id": [world.asr_sample, world.secret_sample],
                **{name: [world.items[world.asr_run][name], world.items[world.secret_run][name]]
                   for name in ("image_id", "table_id")}}
    failures: list[str] = []
    ran = reads = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, [op.label for op in operations]
    for operation in operations:
        targets = [(world.open_url, world.open_url.headers)]
        if operation.method.upper() in {"GET", "HEAD"} or operation.path in READ_POSTS:
            targets.append((world.auth_url, _bearer(world.read)))
            reads += 1
        for mode in (schemathesis.GenerationMode.POSITIVE,
                     schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            positive = mode is schemathesis.GenerationMode.POSITIVE
            try:
                _fuzz(strategy, positive, targets, real_ids, failures)
            except Unsatisfiable:  # no invalid input exists (e.g. a route without parameters)
                assert not positive, operation.label
                continue
            ran += 1
    assert ran > len(operations) and reads >= 5
    assert not failures, "\n".join(failures[:20])


def _fuzz(strategy, positive: bool, targets: list[tuple[str, dict[str, str]]],
          real_ids: dict[str, list], failures: list[str]) -> None:
    """Send EXAMPLES generated requests of one operation to each (base URL, headers) target;
    5xx answers go into ``failures``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy, real=st.booleans(), pick=st.integers(0, 1))
    def call(case, real: bool, pick: int) -> None:
        # Half the valid reads name real runs and samples. Writes never do: the launch token
        # may delete, archive and rename, and the other tests need this world's runs.
        if real and positive and case.method.upper() in {"GET", "HEAD"}:
            for name, choices in real_ids.items():
                if case.path_parameters and name in case.path_parameters:
                    case.path_parameters[name] = choices[pick]
        for base, headers in targets:
            response = case.call(base_url=base, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{response.status_code} {case.method} "
                                f"{response.request.url}: {response.text[:300]}")
            if response.status_code >= 400:  # every error is the one JSON shape
                body = response.json()
                assert set(body["error"]) == {"type", "message"}, body

    call()


# ---------------------------------------------------------------------------------------------
# path traversal


TRAVERSALS = [
    "../{other}/artifacts/notes/readme.txt",
    "..%2F..%2F{other}%2Fartifacts%2Fnotes%2Freadme.txt",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "notes/../../../../etc/passwd",
    "notes/%2e%2e/%2e%2e/tympan.db",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "..%5C..%5Cetc%5Cpasswd",
    "notes/readme.txt%00.png",
    "./notes/readme.txt",
]


@pytest.mark.parametrize("server", ["auth", "open"])
def test_artifact_and_audio_routes_reject_path_traversal(world: World, server: str) -> None:
    base = world.auth_url if server == "auth" else world.open_url
    headers = _bearer(world.read_asr) if server == "auth" else world.open_url.headers
    prefix = f"/api/runs/{world.asr_run}"
    attempts = [f"{prefix}/artifacts/{t.format(other=world.secret_run)}" for t in TRAVERSALS]
    attempts += [
        f"{prefix}/audio/..%2F{world.secret_sample}.wav",
        f"{prefix}/audio/%2e%2e/%2e%2e/{world.secret_run}/audio/{world.secret_sample}.wav",
        f"/api/runs/..%2F{world.secret_run}/artifacts/notes/readme.txt",
        f"/api/runs/%2e%2e/runs/{world.secret_run}/audio",
        f"{prefix}/audio/{world.secret_sample}.wav",  # another run's sample through this run
        f"{prefix}/audio/{world.secret_sample}/spectrogram.png",
        f"{prefix}/audio/{world.secret_sample}/waveform.json",
        "/static/..%2F..%2Fserver%2Fapp.py",
        "/static/%2e%2e/%2e%2e/store/tokens.py",
        "/static/../app.py",
        "/static//etc/passwd",
    ]
    for raw in attempts:
        status, body, content_type = _raw_get(base, raw, headers)
        assert status in (400, 404, 422), (raw, status, body[:200])
        assert content_type.startswith("application/json"), (raw, content_type)
        assert SECRET not in body and b"root:" not in body and b"import" not in body, raw
    # The legitimate paths still work.
    ok, body, _ = _raw_get(base, f"{prefix}/artifacts/notes/readme.txt", headers)
    assert ok == 200 and body == b"hello from asr"
    ok, body, _ = _raw_get(base, f"{prefix}/audio/{world.asr_sample}.wav", headers)
    assert ok == 200 and body[:4] == b"RIFF"


# ---------------------------------------------------------------------------------------------
# projects


def test_a_project_token_sees_nothing_of_another_project(world: World) -> None:
    other, made_up = world.secret_run, "z" * len(world.secret_run)
    for path, methods in _spec_paths(world).items():
        if "{run_id}" not in path or "get" not in methods:
            continue
        # ingest routes are remote logging's (scope write); the rest are read routes
        asr = _bearer(world.write_asr if path.startswith("/api/ingest") else world.read_asr)
        for run_id in (other, made_up):
            filled = _fill(path, world, run_id, world.secret_sample)
            response = httpx.get(world.auth_url + filled, headers=asr)
            assert response.status_code == 404, (filled, response.text)
            assert SECRET not in response.content and b"secret" not in response.content
        # "elsewhere" reads exactly like "nowhere": the same message but for the id
        hidden = httpx.get(world.auth_url + _fill(path, world, other), headers=asr).json()
        absent = httpx.get(world.auth_url + _fill(path, world, made_up), headers=asr).json()
        assert hidden["error"]["message"].replace(other, made_up) == \
            absent["error"]["message"], path
    asr = _bearer(world.read_asr)
    listed = httpx.get(f"{world.auth_url}/api/runs", headers=asr).json()
    assert {r["id"] for r in listed["runs"]} == {world.asr_run}
    asked = httpx.get(f"{world.auth_url}/api/runs", params={"project": "secret"}, headers=asr)
    assert asked.status_code == 404 or asked.json()["runs"] == []
    projects = httpx.get(f"{world.auth_url}/api/projects", headers=asr).json()["projects"]
    assert [p["name"] for p in projects] == ["asr"]
    compared = httpx.get(f"{world.auth_url}/api/compare",
                         params={"runs": f"{world.asr_run},{other}"}, headers=asr)
    assert compared.status_code == 404 and SECRET not in compared.content
    # The all-projects token does see it.
    seen = httpx.get(f"{world.auth_url}/api/runs/{other}/artifacts/notes/readme.txt",
                     headers=_bearer(world.read))
    assert seen.status_code == 200 and seen.content == SECRET


# ---------------------------------------------------------------------------------------------
# auth on every route, scopes, body size


def test_every_api_route_needs_a_token_and_writes_need_write_scope(world: World) -> None:
    paths = _spec_paths(world)
    checked = writes = 0
    for path, methods in paths.items():
        if path in PUBLIC_ROUTES or not path.startswith("/api/"):
            continue
        for method in methods:
            url = world.auth_url + _fill(path, world, world.asr_run)
            anonymous = httpx.request(method.upper(), url, json={})
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert anonymous.json()["error"]["type"] == "UnauthorizedError"
            checked += 1
            if method in ("post", "put", "patch", "delete"):
                with_read = httpx.request(method.upper(), url, json={},
                                          headers=_bearer(world.read))
                if path in READ_POSTS:
                    assert with_read.status_code == 200, (method, path, with_read.text)
                    continue
                assert with_read.status_code == 403, (method, path, with_read.text)
                assert "scope" in with_read.json()["error"]["message"]
                writes += 1
    assert checked >= 10
    assert writes >= 1, "no write routes found in the spec (remote logging's ingest routes)"


def test_oversized_bodies_get_a_json_413(world: World) -> None:
    too_big = b"{" + b" " * (LIMIT_MB * 1024 * 1024 + 10) + b"}"
    ingest = [p for p, m in _spec_paths(world).items()
              if "post" in m and p.startswith("/api/ingest")]
    targets = ["/api/session", *ingest[:3]]
    for path in targets:
        url = world.auth_url + _fill(path, world, world.asr_run)
        response = httpx.post(url, content=too_big, headers={
            "content-type": "application/json", **_bearer(world.read)})
        assert response.status_code == 413, (path, response.text[:200])
        assert response.json()["error"]["type"] == "RequestTooLargeError"

        def chunks() -> Iterator[bytes]:
            for _ in range(LIMIT_MB * 16 + 2):
                yield b" " * 65536

        streamed = httpx.post(url, content=chunks(), headers={
            "content-type": "application/json", **_bearer(world.read)})
        assert streamed.status_code in (403, 413), (path, streamed.text[:200])


def test_the_token_secret_never_appears_in_the_database(world: World) -> None:
    store_dir = Path(world.store)
    on_disk = b"".join(p.read_bytes() for p in store_dir.glob("tympan.db*"))
    for token in (world.read, world.read_asr):
        assert token.split("_", 2)[2].encode() not in on_disk


# ---------------------------------------------------------------------------------------------
# run references resolve only among the token's project's runs


def test_ingest_resolves_run_names_only_within_the_tokens_project(world: World) -> None:
    """No existence oracle: another project's names, ids and prefixes read like nothing."""
    for name in ("dup-secret", "dup-secret", "asr-run"):  # "asr-run" is also asr's run's name
        tympan.init(project="secret", store=world.store, name=name).finish()
    close_stores()
    with open_store(world.store) as store, store.write() as conn:
        other = _bearer(tokens.create(conn, "write", project="other", name="other writer")[0])
    state = f"{world.auth_url}/api/ingest/state"
    secret_ids = {r.id for r in tympan.find_runs(project="secret", store=world.store)}
    secret_ids |= {world.asr_run}
    close_stores()
    prefix = next(world.secret_run[:k] for k in range(3, 10)
                  if not world.asr_run.startswith(world.secret_run[:k]))
    nowhere = httpx.get(state, params={"run": "no-such-run"}, headers=other)
    assert nowhere.status_code == 404, nowhere.text
    expected = nowhere.json()["error"]["message"]
    for ref in ("dup-secret", "asr-run", prefix, world.secret_run, world.asr_run,
                world.asr_run[:4]):
        answer = httpx.get(state, params={"run": ref}, headers=other)
        assert answer.status_code == 404, (ref, answer.text)
        assert answer.json()["error"]["message"] == expected.replace("no-such-run", ref)
        assert not any(i in answer.text for i in secret_ids - {ref}), answer.text

    def create(run_id: str, **fields) -> httpx.Response:
        body = {"id": run_id, "project": "other", "name": run_id, "created_at": 1.0, **fields}
        return httpx.post(f"{world.auth_url}/api/ingest/runs", json=body, headers=other)

    parents = {}
    for ref in ("no-such-run", "dup-secret", "asr-run", world.secret_run, prefix,
                "models:/secret-model@prod"):
        answer = create("orphan", parent=ref)
        assert answer.status_code == 404, (ref, answer.text)
        parents[ref] = answer.json()["error"]["message"].replace(ref, "REF")
        assert not any(i in answer.text for i in secret_ids - {ref}), answer.text
    assert len(set(parents.values())) == 1, parents
    # Within its own project the token resolves names as usual, whatever other projects hold.
    assert create("ownasr", name="asr-run").status_code == 200
    mine = httpx.get(state, params={"run": "asr-run"}, headers=other)
    assert mine.status_code == 200 and mine.json()["id"] == "ownasr", mine.text
    child = create("ownchild", parent="asr-run")
    assert child.status_code == 200, child.text
    assert tympan.load_run("ownchild", store=world.store).parent_id == "ownasr"
    close_stores()


# ---------------------------------------------------------------------------------------------
# a stranger cannot make the server hold a large body


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def _post_big(url: str, body, headers: dict[str, str]) -> int | None:
    """POST ``body``; the status, or None when the server answered and closed the connection
    before the client finished sending (it never reads a refused body)."""
    try:
        return httpx.post(url, content=body, timeout=60, headers={
            "content-type": "application/json", **headers}).status_code
    except httpx.TransportError:
        return None


def test_unauthenticated_bodies_are_refused_before_they_are_read(world: World) -> None:
    base = world.open_url  # `tympan ui`: the default 256 MiB limit for requests with a token
    small = httpx.post(f"{base}/api/session", content=b'{"token": "' + b"x" * 200_000 + b'"}',
                       headers={"content-type": "application/json"})
    assert small.status_code == 413, small.text
    assert "without a valid token" in small.json()["error"]["message"]
    bad_token = httpx.post(f"{base}/api/ingest/runs", content=b" " * 200_000, headers={
        "content-type": "application/json", "Authorization": "Bearer not-the-token"})
    assert bad_token.status_code == 401, bad_token.text
    before = _peak_rss_mib(base.pid)
    big = b"{" + b" " * (64 << 20) + b"}"

    def chunks():
        for _ in range(64):
            yield b" " * (1 << 20)

    from concurrent.futures import ThreadPoolExecutor

    targets = [("/api/session", big, {}), ("/api/ingest/runs", big, {}),
               ("/api/session", chunks(), {}), ("/api/whoami", big, {}),
               ("/api/ingest/metrics", big, {"Authorization": "Bearer not-the-token"})]
    with ThreadPoolExecutor(len(targets)) as pool:
        statuses = list(pool.map(lambda t: _post_big(base + t[0], t[1], t[2]), targets))
    assert all(s in (None, 401, 405, 413) for s in statuses), statuses
    grew = _peak_rss_mib(base.pid) - before
    assert grew < 16, f"the server's peak memory grew by {grew:.0f} MiB"
    assert httpx.get(f"{base}/api/health").status_code == 200
    # With the token, the server's own limit applies (the body reaches the route, 422).
    ok = httpx.post(f"{base}/api/ingest/runs", headers=base.headers,
                    content=b'{"id": "x"' + b" " * 200_000 + b"}")
    assert ok.status_code == 422, ok.text


# ---------------------------------------------------------------------------------------------
# headers and access logs


def test_api_answers_are_not_sniffed_or_cached_and_pages_have_a_csp(world: World) -> None:
    asr = _bearer(world.read_asr)
    for response in (httpx.get(f"{world.auth_url}/api/runs", headers=asr),
                     httpx.get(f"{world.auth_url}/api/runs"),  # a 401
                     httpx.get(f"{world.auth_url}/api/health"),
                     httpx.get(f"{world.open_url}/api/projects", headers=world.open_url.headers)):
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["cache-control"] == "no-store", response.url
    for path in ("/api/docs", "/api/redoc", "/docs"):  # no Swagger UI from a CDN
        assert httpx.get(world.auth_url + path).status_code == 404, path
    page = httpx.get(f"{world.auth_url}/runs")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "http" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    static = httpx.get(f"{world.auth_url}/static/js/main.js")
    assert static.headers["x-content-type-options"] == "nosniff"


def test_access_lines_go_to_stderr_without_tokens(world: World) -> None:
    secret = world.read_asr.split("_", 2)[2]
    marker = "/api/runs?limit=3&project=asr"
    httpx.get(world.auth_url + marker, headers=_bearer(world.read_asr))
    httpx.get(f"{world.auth_url}/runs", params={"token": world.read_asr})  # a sign-in link
    port = world.auth_url.rsplit(":", 1)[1]
    httpx.get(f"{world.auth_url}/api/whoami", cookies={f"tympan_token_{port}": world.read_asr})
    httpx.get(f"{world.open_url}/runs", params={"token": world.open_url.token})
    deadline = time.monotonic() + 10
    log = world.auth_url.stderr.read_text()
    while "GET /api/whoami" not in log and time.monotonic() < deadline:
        time.sleep(0.05)
        log = world.auth_url.stderr.read_text()
    read_asr_id = tokens.split(world.read_asr)[0]
    assert re.search(rf'"GET {re.escape(marker)}" 200 [\d.]+ ms token {read_asr_id}', log), log
    assert '"GET /runs?token=***" 303' in log, log
    assert secret not in log and world.read_asr not in log
    ui_log = world.open_url.stderr.read_text()  # `tympan ui` logs errors only, never tokens
    assert str(world.open_url.token) not in ui_log and "GET /runs" not in ui_log


def test_times_past_what_mlflow_can_hold_and_odd_page_tokens_are_refused(world: World) -> None:
    # Found by the fuzzer: a run created at 1e300 s made every MLflow experiment search a
    # 500 (its milliseconds overflowed), and a page token of "²" passed str.isdigit().
    write = _bearer(world.write_asr)
    body = {"id": "farfuture01", "project": "asr", "name": "far", "created_at": 1e300}
    refused = httpx.post(f"{world.auth_url}/api/ingest/runs", json=body, headers=write)
    assert refused.status_code == 422 and "created_at" in refused.text
    search = f"{world.auth_url}/api/2.0/mlflow/experiments/search"
    odd = httpx.post(search, json={"page_token": "²"}, headers=_bearer(world.read))
    assert odd.status_code == 400 and "page_token" in odd.text
    assert httpx.post(search, json={}, headers=_bearer(world.read)).status_code == 200
