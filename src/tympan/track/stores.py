"""One open Store per location per process, shared by runs and reads (one engine, one pool),
and one transport per location for runs to write through (one HTTP connection pool)."""

from __future__ import annotations

import os
import threading

from tympan import settings
from tympan.errors import StoreURLError
from tympan.store import Store, open_store
from tympan.store.location import is_remote, redact
from tympan.track.transport import Transport

_stores: dict[str, Store] = {}
_transports: dict[str, Transport] = {}
_lock = threading.Lock()


def _where(where: str | os.PathLike[str] | None) -> str:
    return os.fspath(where) if where is not None else settings.get("TYMPAN_STORE")


def shared_store(where: str | os.PathLike[str] | None, *, create: bool = False) -> Store:
    key = _where(where)
    if is_remote(key):
        raise StoreURLError(
            f"{redact(key)} is a tympan server: runs log to it (tympan.init) and are read back "
            "through it (tympan runs/show/diff/export, tympan.load_run, tympan.find_runs), "
            "but this needs the store itself: pass the server's own store location"
        )
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = open_store(key, create=create)
        return store


def shared_transport(where: str | os.PathLike[str] | None) -> Transport:
    """What runs logging to ``where`` write through: a local store (created if missing) or,
    for ``http://`` and ``https://`` locations, a tympan server."""
    key = _where(where)
    if not is_remote(key):
        from tympan.track.local import LocalTransport

        store = shared_store(key, create=True)
        with _lock:
            transport = _transports.get(key)
            if transport is None:
                if settings.get("TYMPAN_CHECK_STORE"):
                    store.verify()  # the first write of this process: refuse a damaged file
                transport = _transports[key] = LocalTransport(store)
            return transport
    from tympan.track.remote import HttpTransport

    token = settings.get("TYMPAN_TOKEN")
    with _lock:
        transport = _transports.get(f"{key} {token}")
        if transport is None:
            transport = _transports[f"{key} {token}"] = HttpTransport(key, token)
        return transport


def close_stores() -> None:
    """Dispose every cached engine (tests, and code that drops databases it created)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
        for transport in _transports.values():
            close = getattr(transport, "close", None)
            if close is not None:
                close()
        _transports.clear()


def _forget_in_child() -> None:
    # A forked child must not share the parent's HTTP connections (or SQLite handles).
    _transports.clear()


os.register_at_fork(after_in_child=_forget_in_child)
