"""Tokens: created, listed and revoked with the CLI, stored hashed, checked by a real server.

Every server here is a real process started with the CLI (tests/server_fixtures.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect
from tests.server_fixtures import live_server

import tympan
from tympan.cli.app import main
from tympan.errors import SchemaVersionError
from tympan.store import open_store, tokens, upgrade_store, versioning
from tympan.track.stores import close_stores


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_store(where: str) -> str:
    """A store with one finished run in each of the projects 'asr' and 'tts'."""
    for project in ("asr", "tts"):
        run = tympan.init(project=project, store=where, config={"lr": 0.1})
        run.log({"loss": 0.5}, step=1)
        run.finish()
    close_stores()
    return where


def create_token(capsys, where: str, *args: str) -> str:
    code, out, err = cli(capsys, "--store", where, "token", "create", *args)
    assert code == 0, err
    return out.strip()


def test_a_0002_store_upgrades_to_0003_keeping_its_runs(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    run = tympan.init(project="old", store=store_url, config={"a": 1})
    run.log({"loss": 0.25}, step=3)
    run.finish()
    close_stores()
    store = open_store(store_url)
    with store.engine.begin() as conn:  # back to the schema of the studies release
        config = Config()
        config.set_main_option("script_location", str(versioning.MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    store.close()
    with pytest.raises(SchemaVersionError, match="0002, older than"):
        open_store(store_url)
    assert upgrade_store(store_url)[:2] == ("0002", versioning.HEAD)
    with open_store(store_url) as upgraded, upgraded.read() as conn:
        assert "tokens" in inspect(conn).get_table_names()
    assert tympan.load_run(run.id, store=store_url).summary["loss"].last == 0.25


def test_token_cli_creates_lists_and_revokes(store_url: str, capsys) -> None:
    make_store(store_url)
    text = create_token(capsys, store_url, "--scope", "read", "--project", "asr",
                        "--name", "ci reader")
    assert text.startswith("tympan_") and len(text) > 40 and "\n" not in text
    token_id = tokens.split(text)[0]
    code, out, _ = cli(capsys, "--store", store_url, "token", "list", "--json")
    listed = json.loads(out)
    assert [(t["id"], t["scope"], t["project"], t["name"], t["revoked_at"]) for t in listed] == [
        (token_id, "read", "asr", "ci reader", None)]
    assert text.split("_", 2)[2] not in out  # the secret is never shown again
    code, out, _ = cli(capsys, "--store", store_url, "token", "list")
    assert code == 0 and token_id in out and "active" in out and "ci reader" in out
    code, out, _ = cli(capsys, "--store", store_url, "token", "revoke", token_id)
    assert code == 0 and f"revoked token {token_id}" in out
    code, out, _ = cli(capsys, "--store", store_url, "token", "list")
    assert "revoked" in out
    code, out, err = cli(capsys, "--store", store_url, "token", "revoke", "nosuchid")
    assert code == 1 and err.startswith("error: no token with id 'nosuchid'")
    code, out, err = cli(capsys, "--store", store_url, "token", "create", "--scope", "root")
    assert code == 1 and "unknown token scope 'root'" in err and "Traceback" not in err


def test_tokens_are_stored_hashed(tmp_path: Path, capsys) -> None:
    where = make_store(str(tmp_path / "store"))
    text = create_token(capsys, where, "--scope", "admin")
    secret = text.split("_", 2)[2]
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "store").glob("tympan.db*"))
    assert secret.encode() not in on_disk and text.encode() not in on_disk
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in on_disk


@pytest.mark.slow
def test_a_real_server_checks_tokens_scopes_and_revocation(store_url: str, capsys) -> None:
    make_store(store_url)
    reader = create_token(capsys, store_url, "--scope", "read")
    admin = create_token(capsys, store_url, "--scope", "admin", "--name", "ops")
    asr_only = create_token(capsys, store_url, "--scope", "write", "--project", "asr")
    with live_server(store_url) as url:
        def get(path: str, token: str | None = None, **kw) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.get(url + path, headers=headers, **kw)

        assert get("/api/health").json()["status"] == "ok"  # needs no token
        anonymous = get("/api/whoami").json()
        assert anonymous["auth_required"] is True and anonymous["authenticated"] is False
        who = get("/api/whoami", admin).json()
        assert (who["scope"], who["project"], who["name"]) == ("admin", None, "ops")
        assert get("/api/whoami", asr_only).json()["project"] == "asr"

        # No token, a malformed header, a made-up token: 401 in the JSON error shape.
        for response in (get("/api/runs"), get("/api/runs", "tympan_0000_nope"),
                         httpx.get(url + "/api/runs", headers={"Authorization": "Basic eA=="})):
            assert response.status_code == 401, response.text
            assert response.json()["error"]["type"] == "UnauthorizedError"
        assert get("/api/runs", reader).status_code == 200
        projects = {r["project"] for r in get("/api/runs", asr_only).json()["runs"]}
        assert projects == {"asr"}

        # Revoked: refused from the next request on, with a message saying so.
        reader_id = tokens.split(reader)[0]
        assert cli(capsys, "--store", store_url, "token", "revoke", reader_id)[0] == 0
        refused = get("/api/runs", reader)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
        who = get("/api/whoami", reader).json()
        assert who["authenticated"] is False and "revoked" in who["reason"]

        with open_store(store_url) as store, store.read() as conn:
            used = {t.id: t.last_used_at for t in tokens.all_tokens(conn)}
        assert used[tokens.split(admin)[0]] is not None


@pytest.mark.slow
def test_a_session_cookie_signs_the_browser_in_and_out(tmp_path: Path, capsys) -> None:
    where = make_store(str(tmp_path / "store"))
    reader = create_token(capsys, where, "--scope", "read", "--project", "tts")
    with live_server(where) as url, httpx.Client(base_url=url) as browser:
        bad = browser.post("/api/session", json={"token": "tympan_abc_wrong"})
        assert bad.status_code == 401 and bad.json()["error"]["type"] == "UnauthorizedError"
        signed_in = browser.post("/api/session", json={"token": reader})
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["project"] == "tts"
        cookie = signed_in.headers["set-cookie"].lower()
        assert cookie.startswith(f"tympan_token_{url.rsplit(':', 1)[1]}=")
        assert "httponly" in cookie
        assert "samesite=strict" in cookie and "path=/" in cookie
        assert browser.get("/api/whoami").json()["authenticated"] is True
        assert browser.get("/api/runs").status_code == 200  # the cookie alone is enough
        browser.delete("/api/session")
        assert browser.get("/api/whoami").json()["authenticated"] is False
        assert browser.get("/api/runs").status_code == 401
