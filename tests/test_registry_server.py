"""The registry through a real team server process: scopes (read loads, write registers and
moves unprotected aliases, admin moves protected ones), project-bound tokens that see only
their project's models (404 otherwise), loading and registering over HTTP, cards, OpenAPI."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from tests.registry_fixtures import asr_run, tiny_corpus
from tests.server_fixtures import live_server

import tympan
from tympan.errors import NotFoundError, ProtectedAliasError, StoreError
from tympan.store import open_store, tokens
from tympan.track.stores import close_stores

RECIPE = "recipes/asr_ctc"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory):
    """(server URL, tokens by role, store path, a run id): one server for the module."""
    root = tmp_path_factory.mktemp("registry-server")
    corpus = tiny_corpus(tmp_path_factory)
    store = str(root / "store")
    run = asr_run(store, corpus)
    tympan.models.register(run.id, "asr", recipe=RECIPE, store=store)
    other = asr_run(store, corpus, project="tts")
    tympan.models.register(other.id, "voice", recipe=RECIPE, store=store)
    close_stores()
    made = {}
    with open_store(store) as opened, opened.write() as conn:
        for role, scope, project in (("read", "read", None), ("write", "write", "asr-ctc"),
                                     ("admin", "admin", None), ("tts", "read", "tts")):
            made[role] = tokens.create(conn, scope, project, name=role)[0]
    with live_server(store) as url:
        yield url, made, store, run.id


def api(url: str, token: str, method: str, path: str, **kwargs):
    return httpx.request(method, f"{url}{path}", headers={"Authorization": f"Bearer {token}"},
                         timeout=60, **kwargs)


def test_a_read_token_loads_a_model_through_the_api(team, monkeypatch) -> None:
    url, made, _, run_id = team
    monkeypatch.setenv("TYMPAN_TOKEN", made["read"])
    loaded = tympan.models.load("models:/asr/1", store=url)
    assert loaded.version.run_id == run_id and not loaded.model.training
    assert isinstance(loaded.predict([np.zeros(6000, np.float32)])[0], str)
    assert [m.name for m in tympan.models.list_models(store=url)] == ["asr", "voice"]
    card = tympan.models.card("models:/asr/1", store=url)
    assert card["markdown"].startswith("# asr version 1")
    wer = next(m for m in card["metrics"] if (m["split"], m["metric"]) == ("test", "wer"))
    assert (wer["value"], wer["low"], wer["high"]) == pytest.approx((0.2, 0.15, 0.25))
    monkeypatch.setenv("TYMPAN_TOKEN", "tympan_nope_nope")
    with pytest.raises(StoreError, match="answered 401"):
        tympan.models.get("asr/1", store=url)


def test_models_uris_load_through_the_server_named_by_tympan_store(team, monkeypatch) -> None:
    """With the server as the only store setting (no ``store=``), ``models:/`` URIs load the
    model, name its run for ``load_run`` and ``tympan show``, as from the store."""
    from tests.test_cli import tympan_cli

    url, made, store, run_id = team
    monkeypatch.setenv("TYMPAN_STORE", url)
    monkeypatch.setenv("TYMPAN_TOKEN", made["read"])
    loaded = tympan.models.load("models:/asr/1")
    assert loaded.version.run_id == run_id
    assert tympan.load_run("models:/asr/1").id == run_id
    remote = tympan_cli("show", "models:/asr/1", "--json",
                        env={"TYMPAN_STORE": url, "TYMPAN_TOKEN": made["read"]})
    local = tympan_cli("--store", store, "show", "models:/asr/1", "--json")
    assert remote.code == 0 and remote == local, remote
    hidden = tympan_cli("show", "models:/asr/1",
                        env={"TYMPAN_STORE": url, "TYMPAN_TOKEN": made["tts"]})
    assert hidden.code == 1 and "answered 404" in hidden.stderr, hidden


def test_a_project_bound_token_sees_only_its_projects_models(team) -> None:
    url, made, _, _ = team
    listed = api(url, made["tts"], "GET", "/api/models").json()["models"]
    assert [m["name"] for m in listed] == ["voice"]
    hidden = api(url, made["tts"], "GET", "/api/models/asr")
    missing = api(url, made["tts"], "GET", "/api/models/none-such")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == "no model 'asr' in the registry"
    assert missing.json()["error"]["message"] == "no model 'none-such' in the registry"
    for path in ("/api/models/asr/versions/1", "/api/models/asr/versions/1/files/weights",
                 "/api/models/asr/history", "/api/models/asr/versions/1/card"):
        assert api(url, made["tts"], "GET", path).status_code == 404, path
    assert api(url, made["tts"], "GET", "/api/models/voice/versions/1").status_code == 200
    assert api(url, made["tts"], "GET", "/api/models?project=asr-ctc").status_code == 404


def test_scopes_decide_who_moves_which_alias(team, monkeypatch) -> None:
    url, made, _, _ = team
    body = {"version": 1, "reason": "canary traffic"}
    refused = api(url, made["read"], "PUT", "/api/models/asr/aliases/canary", json=body)
    assert refused.status_code == 403
    done = api(url, made["write"], "PUT", "/api/models/asr/aliases/canary", json=body)
    assert done.status_code == 200, done.text
    assert done.json()["actor"].startswith("token:") and done.json()["actor"].endswith("(write)")
    champion = {"version": 1, "reason": "ship it", "admin": True}
    protected = api(url, made["write"], "PUT", "/api/models/asr/aliases/champion", json=champion)
    assert protected.status_code == 403
    assert protected.json()["error"]["type"] == "ProtectedAliasError"
    assert "not admin" in protected.json()["error"]["message"]
    silent = api(url, made["admin"], "PUT", "/api/models/asr/aliases/champion",
                 json={**champion, "admin": False})
    assert silent.status_code == 403  # an admin token must ask to use its authority
    moved = api(url, made["admin"], "PUT", "/api/models/asr/aliases/champion", json=champion)
    assert moved.status_code == 200 and moved.json()["authority"] == "admin"
    # The Python API over HTTP: the same rules, the same errors.
    monkeypatch.setenv("TYMPAN_TOKEN", made["write"])
    with pytest.raises(ProtectedAliasError, match="protected"):
        tympan.models.delete_alias("asr@champion", reason="x", admin=True, store=url)
    event = tympan.models.delete_alias("asr@canary", reason="done", store=url)
    assert event.action == "delete" and event.actor.startswith("token:")
    history = api(url, made["read"], "GET", "/api/models/asr/history",
                  params={"alias": "champion", "at": moved.json()["at"] + 1}).json()
    assert history["at"]["version"] == 1 and len(history["events"]) == 1
    with pytest.raises(NotFoundError):
        tympan.models.get("asr@canary", store=url)


def test_a_write_token_registers_through_the_api(team, monkeypatch) -> None:
    url, made, _, run_id = team
    monkeypatch.setenv("TYMPAN_TOKEN", made["write"])
    version = tympan.models.register(run_id, "asr", recipe=RECIPE, store=url,
                                     description="over HTTP")
    assert version.version >= 2 and version.description == "over HTTP"
    assert version.created_by.startswith("token:")
    assert version.lineage["data"] and version.code_sha256
    monkeypatch.setenv("TYMPAN_TOKEN", made["read"])
    assert tympan.models.load(version.uri, store=url).version.version == version.version
    forged = version.as_dict() | {"sha256": "0" * 64}
    forged = {k: forged[k] for k in ("run_id", "artifact", "sha256", "size", "code_sha256",
                                     "recipe", "config", "signature", "lineage")}
    refused = api(url, made["write"], "POST", "/api/models/asr/versions", json=forged)
    assert refused.status_code == 400 and "with those weights" in refused.text


def test_model_routes_are_in_the_openapi_spec(team) -> None:
    url = team[0]
    paths = httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    assert {"/api/models", "/api/models/{name}", "/api/models/{name}/versions/{version}",
            "/api/models/{name}/aliases/{alias}", "/api/models/{name}/history",
            "/api/models/{name}/versions/{version}/card"} <= set(paths)
    assert {"put", "delete", "get"} <= set(paths["/api/models/{name}/aliases/{alias}"])
