"""FastAPI dependencies that hand routes the app's store and config."""

from __future__ import annotations

from fastapi import Request

from tympan.server.config import ServerConfig
from tympan.store import Store


def get_store(request: Request) -> Store:
    """The store this server serves (opened once by ``create_app``)."""
    return request.app.state.store


def get_config(request: Request) -> ServerConfig:
    return request.app.state.config
