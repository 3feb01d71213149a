"""One open Store per location per process, shared by runs and reads (one engine, one pool)."""

from __future__ import annotations

import os
import threading

from tympan import settings
from tympan.store import Store, open_store

_stores: dict[str, Store] = {}
_lock = threading.Lock()


def shared_store(where: str | os.PathLike[str] | None, *, create: bool = False) -> Store:
    key = os.fspath(where) if where is not None else settings.get("TYMPAN_STORE")
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = open_store(key, create=create)
        return store


def close_stores() -> None:
    """Dispose every cached engine (tests, and code that drops databases it created)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
