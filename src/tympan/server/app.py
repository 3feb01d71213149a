"""``create_app(config)``: the FastAPI app over one store, its routers and static files."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tympan import __version__
from tympan.errors import ConfigError
from tympan.server import errors
from tympan.server.config import ServerConfig
from tympan.server.guard import Guard
from tympan.server.hosts import HostNames
from tympan.server.routes import ROUTERS
from tympan.store import Store, open_store
from tympan.store.location import redact

STATIC = Path(__file__).with_name("static")


def create_app(config: ServerConfig) -> FastAPI:
    """The app serving ``config.store``; the store is opened here, closed at shutdown."""
    store = open_served_store(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="tympan",
        version=__version__,
        description="The JSON API of a tympan store: runs, metrics, artifacts, audio, "
                    "studies and probes (the web UI is built on it).",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI would load third-party scripts into this origin
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.config = config
    app.state.store = store
    errors.install(app)
    app.add_middleware(Guard, hosts=HostNames(config.host, config.allowed_hosts),
                       max_body_bytes=config.max_body_bytes)
    for module_path in ROUTERS:
        module = importlib.import_module(module_path)  # a broken route module stops startup
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app


def open_served_store(config: ServerConfig) -> Store:
    """Open the store; a new one (``config.create``) records ``config.artifacts`` as its
    artifact root; an existing one must already keep its artifacts there."""
    with _artifacts_setting(config.artifacts):
        store = open_store(config.store, create=config.create)
    if config.artifacts is not None and not _same_root(store.blobs.root, config.artifacts):
        where, root, given = store.where, redact(store.blobs.root), redact(config.artifacts)
        store.close()
        raise ConfigError(
            f"the store at {where} keeps its artifacts at {root}, not {given}: "
            "drop --artifacts, or give that location"
        )
    return store


def _same_root(recorded: str, given: str) -> bool:
    if "://" in given and not given.startswith("file://"):
        return recorded.rstrip("/") == given.rstrip("/")
    path = given.removeprefix("file://")
    return os.path.abspath(recorded) == os.path.abspath(path)


@contextmanager
def _artifacts_setting(root: str | None):
    """TYMPAN_ARTIFACTS set to ``root`` while a new store may be created, then restored."""
    if root is None:
        yield
        return
    before = os.environ.get("TYMPAN_ARTIFACTS")
    os.environ["TYMPAN_ARTIFACTS"] = root
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TYMPAN_ARTIFACTS", None)
        else:
            os.environ["TYMPAN_ARTIFACTS"] = before
