"""`tympan ui` cannot be driven by a web page or by another user of the machine (issue 11,
item 1): every request needs this launch's token (a Bearer header, or the cookie its printed
sign-in link sets), and only requests for the names the server is really reached by are
answered (DNS rebinding). All against real `tympan ui` / `tympan server` processes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.server_fixtures import ServerURL, live_server, stop

import tympan
from tympan.errors import TympanError
from tympan.track.stores import close_stores

NEW_RUN = {"id": "intruder01", "project": "asr", "name": "planted", "created_at": 1.0}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory):
    where = str(tmp_path_factory.mktemp("launch") / "store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TYMPAN_CAPTURE_ENV", "0")
        run = tympan.init(project="asr", store=where, name="base", config={"lr": 0.1})
        run.log({"loss": 0.5}, step=1)
        run.finish()
        close_stores()
    with live_server(where, auth=False) as url:
        yield where, url


def _port(url: ServerURL) -> str:
    return url.rsplit(":", 1)[1]


def test_ui_prints_a_sign_in_link_and_answers_nothing_without_its_token(ui) -> None:
    _, url = ui
    assert url.token and len(url.token) >= 40
    for method, path, body in (("GET", "/api/runs", None), ("GET", "/api/projects", None),
                               ("POST", "/api/ingest/runs", NEW_RUN)):
        anonymous = httpx.request(method, url + path, json=body)
        assert anonymous.status_code == 401, (path, anonymous.text)
        assert anonymous.json()["error"]["type"] == "UnauthorizedError"
        wrong = httpx.request(method, url + path, json=body,
                              headers={"Authorization": "Bearer " + "x" * 43})
        assert wrong.status_code == 401 and "tympan ui" in wrong.json()["error"]["message"]
    who = httpx.get(f"{url}/api/whoami").json()
    assert who["auth_required"] is True and who["authenticated"] is False
    assert who["launch_link"] is True
    listed = httpx.get(f"{url}/api/runs", headers=url.headers)
    assert listed.status_code == 200 and [r["name"] for r in listed.json()["runs"]] == ["base"]
    who = httpx.get(f"{url}/api/whoami", headers=url.headers).json()
    assert (who["authenticated"], who["scope"], who["project"]) == (True, "admin", None)
    assert httpx.get(f"{url}/api/health").status_code == 200  # the only open route


def test_ui_refuses_requests_for_other_host_names(ui) -> None:
    """A DNS-rebinding page sends its own name as Host: refused, with or without a token."""
    _, url = ui
    port = _port(url)
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example",
                 "", "10.1.2.3"):
        for path in ("/api/runs", "/api/health", "/runs", "/?token=" + str(url.token)):
            refused = httpx.get(url + path, headers={**url.headers, "Host": host})
            assert refused.status_code == 400, (host, path, refused.text)
            assert refused.json()["error"]["type"] == "UntrustedHostError"
    planted = httpx.post(f"{url}/api/ingest/runs", json=NEW_RUN,
                         headers={**url.headers, "Host": "attacker.example"})
    assert planted.status_code == 400
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST",
                 "localhost."):
        answer = httpx.get(f"{url}/api/runs", headers={**url.headers, "Host": host})
        assert answer.status_code == 200, (host, answer.text)


def test_the_sign_in_link_sets_the_cookie_and_drops_the_token_from_the_url(ui) -> None:
    _, url = ui
    with httpx.Client(base_url=url, follow_redirects=False) as browser:
        first = browser.get("/runs", params={"project": "asr", "token": url.token})
        assert first.status_code == 303, first.text
        assert first.headers["location"] == "/runs?project=asr"
        assert first.headers["referrer-policy"] == "no-referrer"
        cookie = first.headers["set-cookie"].lower()
        assert cookie.startswith(f"tympan_token_{_port(url)}=")
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert browser.get("/api/runs").status_code == 200  # the cookie alone
        assert browser.get("/api/whoami").json()["name"] == "tympan ui"
        browser.delete("/api/session")
        assert browser.get("/api/runs").status_code == 401
    with httpx.Client(base_url=url, follow_redirects=False) as stranger:
        bad = stranger.get("/", params={"token": "guess"})
        assert bad.status_code == 303 and bad.headers["location"] == "/"
        assert "set-cookie" not in bad.headers
        assert stranger.get("/api/runs").status_code == 401
        signed = stranger.post("/api/session", json={"token": url.token})  # the token prompt
        assert signed.status_code == 200 and stranger.get("/api/runs").status_code == 200


def test_a_training_script_logs_to_a_ui_with_its_token(ui, monkeypatch) -> None:
    where, url = ui
    monkeypatch.setenv("TYMPAN_CAPTURE_ENV", "0")
    monkeypatch.setenv("TYMPAN_STORE", str(url))
    with pytest.raises(TympanError, match="401"):
        tympan.init(project="asr", name="no-token")
    close_stores()
    monkeypatch.setenv("TYMPAN_TOKEN", str(url.token))
    with tympan.init(project="asr", name="with-token") as run:
        run.log({"loss": 0.25}, step=3)
    close_stores()
    monkeypatch.delenv("TYMPAN_TOKEN")
    monkeypatch.setenv("TYMPAN_STORE", url.sign_in_link)  # the printed link works as is
    with tympan.init(project="asr", name="from-link") as run:
        run.log({"loss": 0.125}, step=3)
    close_stores()
    names = {r.name for r in tympan.find_runs(project="asr", store=where)}
    assert {"with-token", "from-link"} <= names and "no-token" not in names
    close_stores()


def test_the_browser_is_opened_through_a_private_file(ui, tmp_path: Path) -> None:
    """The token never appears on a command line (other users can read those)."""
    where, _ = ui
    record = tmp_path / "browser-argv.json"
    browser = tmp_path / "browser.py"
    # Written aside and renamed, so the test never reads a file the browser is still writing.
    browser.write_text("import json, os, sys\n"
                       f"json.dump(sys.argv[1:], open({str(record)!r} + '.part', 'w'))\n"
                       f"os.replace({str(record)!r} + '.part', {str(record)!r})\n")
    env = {**os.environ, "BROWSER": f"{sys.executable} {browser} %s", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "out.txt"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "tympan.cli.app", "ui", "--store", where,
                                 "--port", "0"], stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not record.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert record.exists(), out.read_text()
        while "?token=" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        argv = json.loads(record.read_text())
        token = out.read_text().split("?token=", 1)[1].split()[0]
        assert len(argv) == 1 and argv[0].startswith("file://") and token not in argv[0]
        page = Path(argv[0].removeprefix("file://"))
        assert token in page.read_text()
        assert stat.S_IMODE(page.stat().st_mode) == 0o600
        assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700
    finally:
        stop(proc)
    assert not page.exists()  # removed when the server stops


def test_a_team_server_answers_its_proxys_name_once_allowed(tmp_path: Path) -> None:
    where = str(tmp_path / "store")
    tympan.init(project="asr", store=where).finish()
    close_stores()
    with live_server(where, extra_args=["--allow-host", "tympan.lab.example",
                                        "--allow-host", "*.proxy.example"]) as url:
        for host, status in (("tympan.lab.example", 200), ("TYMPAN.lab.example:443", 200),
                             ("a.b.proxy.example", 200), ("proxy.example", 400),
                             ("lab.example", 400), ("evil.example", 400)):
            answer = httpx.get(f"{url}/api/health", headers={"Host": host})
            assert answer.status_code == status, (host, answer.text)

