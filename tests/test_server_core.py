"""The server process as users start it: `tympan ui` and `tympan server` from the CLI, the one
JSON error shape, request size limits, static files, and refusing unsafe or broken set-ups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.server_fixtures import live_server, server_command

import tympan
from tympan.cli.app import main
from tympan.track.stores import close_stores

REPO = Path(__file__).resolve().parents[1]


def store_with_a_run(where: str) -> str:
    run = tympan.init(project="asr", store=where, config={"lr": 0.1})
    run.log({"loss": 0.5}, step=1)
    run.finish()
    close_stores()
    return where


def is_error(response: httpx.Response, status: int, type_: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == type_, body
    assert "Traceback" not in response.text
    return body["error"]["message"]


def test_importing_tympan_and_its_cli_loads_no_web_framework() -> None:
    code = ("import sys, tympan, tympan.cli.app; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'fastapi', 'uvicorn', 'starlette', 'httpx'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_server_starts_without_scipy_stats_or_signal(tmp_path: Path) -> None:
    """Importing scipy.stats (scipy.signal imports it too) added 1.5 s to every server start;
    the study routes need only the t distribution's quantiles, which scipy.special has."""
    code = ("import sys; from tympan.server.app import create_app; "
            "from tympan.server.config import ServerConfig; "
            f"create_app(ServerConfig({str(tmp_path / 'store')!r}, create=True)); "
            "print(sorted(m for m in ('scipy.stats', 'scipy.signal') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_ui_refuses_a_public_address_without_auth(tmp_path: Path, capsys) -> None:
    where = store_with_a_run(str(tmp_path / "store"))
    for host in ("0.0.0.0", "192.168.1.20", "example.org"):
        code = main(["--store", where, "ui", "--host", host, "--no-open"])
        err = capsys.readouterr().err
        assert code == 1, err
        assert err.count("\n") == 1 and err.startswith("error: refusing to serve the store on")
        assert "--auth" in err and "127.0.0.1" in err


def test_a_missing_store_or_a_taken_port_is_one_clear_line(tmp_path: Path, capsys) -> None:
    code = main(["ui", "--store", str(tmp_path / "nothing"), "--no-open"])
    assert code == 1 and "no tympan store" in capsys.readouterr().err
    where = store_with_a_run(str(tmp_path / "store"))
    with live_server(where, auth=False) as url:
        port = url.rsplit(":", 1)[1]
        code = main(["ui", "--store", where, "--port", port, "--no-open"])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith(f"error: cannot listen on 127.0.0.1:{port}"), err


@pytest.mark.slow
def test_ui_serves_the_store_prints_its_url_and_answers_json_errors(tmp_path: Path) -> None:
    where = store_with_a_run(str(tmp_path / "store"))
    with live_server(where, auth=False) as url:
        assert url.startswith("http://127.0.0.1:")
        health = httpx.get(f"{url}/api/health").json()
        assert health == {"status": "ok", "version": tympan.__version__}
        who = httpx.get(f"{url}/api/whoami", headers=url.headers).json()
        assert who["launch_link"] is True and who["scope"] == "admin"
        spec = httpx.get(f"{url}/openapi.json").json()
        assert "/api/health" in spec["paths"] and "/api/session" in spec["paths"]

        is_error(httpx.get(f"{url}/api/no/such/route"), 404, "NotFoundError")
        is_error(httpx.put(f"{url}/api/health"), 405, "MethodNotAllowedError")
        message = is_error(httpx.post(f"{url}/api/session", json={"nope": 1}), 422,
                           "ValidationError")
        assert "token" in message
        is_error(httpx.post(f"{url}/api/session", content=b"{not json",
                            headers={"content-type": "application/json"}), 422,
                 "ValidationError")
        is_error(httpx.get(f"{url}/static/js/../../app.py"), 404, "NotFoundError")
        static = sorted((REPO / "src/tympan/server/static").rglob("*.js"))
        if static:  # the web UI's own files (tests/test_ui_browser.py covers the pages)
            relative = static[0].relative_to(REPO / "src/tympan/server/static").as_posix()
            served = httpx.get(f"{url}/static/{relative}")
            assert served.status_code == 200 and served.content == static[0].read_bytes()


@pytest.mark.slow
def test_request_bodies_over_the_limit_get_413(tmp_path: Path) -> None:
    where = store_with_a_run(str(tmp_path / "store"))
    limit = int(0.01 * 1024 * 1024)
    with live_server(where, extra_args=["--max-body-mb", "0.01"]) as url:
        declared = httpx.post(f"{url}/api/session", content=b"x" * (limit + 1),
                              headers={"content-type": "application/json"})
        assert str(limit) in is_error(declared, 413, "RequestTooLargeError")

        def chunks():  # no Content-Length: the server counts what arrives
            for _ in range(limit // 1000 + 5):
                yield b"y" * 1000

        streamed = httpx.post(f"{url}/api/session", content=chunks(),
                              headers={"content-type": "application/json"})
        is_error(streamed, 413, "RequestTooLargeError")
        small = httpx.post(f"{url}/api/session", json={"token": "tympan_x_y"})
        is_error(small, 401, "UnauthorizedError")  # under the limit: judged on its merits


def test_server_creates_a_new_store_with_its_artifact_root_and_keeps_to_it(
    tmp_path: Path, capsys
) -> None:
    where, blobs = str(tmp_path / "team.db"), str(tmp_path / "bucket")
    with live_server(where, extra_args=["--artifacts", f"file://{blobs}"]) as url:
        assert httpx.get(f"{url}/api/health").status_code == 200
    from tympan.store import open_store

    with open_store(where) as store:
        assert store.blobs.root == blobs
    proc = subprocess.run(server_command(where, extra_args=["--artifacts", "s3://elsewhere"]),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: the store at") and "s3://elsewhere" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_server_on_an_old_schema_says_how_to_upgrade(tmp_path: Path) -> None:
    from sqlalchemy import text

    from tympan.store import open_store

    where = store_with_a_run(str(tmp_path / "store"))
    with open_store(where) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    proc = subprocess.run(server_command(where), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and f"tympan --store {where}" in proc.stderr
    assert "db upgrade" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_an_unexpected_exception_is_a_json_500_without_the_traceback(tmp_path: Path,
                                                                         caplog) -> None:
    """A route that raises: the client gets a generic JSON 500, the log gets the traceback."""
    from fastapi import APIRouter

    from tympan.server.app import create_app
    from tympan.server.config import ServerConfig

    app = create_app(ServerConfig(store=store_with_a_run(str(tmp_path / "store")), auth=False,
                                  launch_token="launch-token-of-this-test"))
    broken = APIRouter()

    @broken.get("/api/broken")
    def broken_route() -> None:
        raise KeyError("secret internals at /srv/tympan/db.py line 12")

    app.include_router(broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get("/api/broken")

    import asyncio

    with caplog.at_level("ERROR", logger="tympan.server"):
        response = asyncio.run(fetch())
    message = is_error(response, 500, "InternalError")
    assert "secret internals" not in response.text and "KeyError" not in response.text
    assert "logged" in message
    assert "secret internals" in caplog.text and "Traceback" in caplog.text
    json.dumps(response.json())
