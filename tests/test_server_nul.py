"""A NUL character in a run's name, project, tags or note is refused where it is given, on
every backend: ``tympan.init`` raises InvalidInputError, and the ingest route answers 422
(PostgreSQL's text columns cannot hold NUL; it used to surface as a 500 there)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import tympan
from tympan.errors import InvalidInputError
from tympan.track.stores import close_stores

BAD = {"name": "a\x00b", "project": "asr\x00", "tags": ["ok", "ta\x00g"], "note": "n\x00te"}


def _init(store: str, **fields) -> tympan.Run:
    kwargs = {"project": "asr", "name": "fine", "store": store, **fields}
    return tympan.init(**kwargs)


def test_the_local_api_refuses_nul(store_url: str) -> None:
    for field, value in BAD.items():
        with pytest.raises(InvalidInputError, match="NUL"):
            _init(store_url, **{field: value})
    with _init(store_url) as run, pytest.raises(InvalidInputError, match="NUL"):
        run.log_audio("eval/a", [0.0] * 160, 16000, caption="c\x00")
    close_stores()


def test_the_ingest_route_answers_422_for_nul(store_url: str) -> None:
    from tympan.server.app import create_app
    from tympan.server.config import ServerConfig

    _init(store_url).finish()
    close_stores()
    app = create_app(ServerConfig(store=store_url, auth=False, launch_token="nul-test-token"))
    run = {"id": "nulrun", "project": "asr", "name": "fine", "created_at": 1.0}
    bodies = [{**run, "name": "a\x00b"}, {**run, "project": "asr\x00"},
              {**run, "parent": "x\x00"}, {**run, "tags": ["ta\x00g"]}, {**run, "note": "\x00"}]

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                     headers={"Authorization": "Bearer nul-test-token"}) as c:
            return [await c.post("/api/ingest/runs", json=b) for b in bodies]

    try:
        for body, response in zip(bodies, asyncio.run(post_all()), strict=True):
            assert response.status_code == 422, (body, response.text)
            error = response.json()["error"]
            assert error["type"] == "ValidationError" and "NUL" in error["message"], error
    finally:
        app.state.store.close()
    assert tympan.find_runs(project="asr", store=store_url)[0].name == "fine"
    close_stores()
