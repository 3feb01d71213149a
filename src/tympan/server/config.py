"""What a server process serves and how: the store, auth, the request body limit, the address."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_PORT = 8787
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024  # artifacts arrive in request bodies


@dataclass(frozen=True)
class ServerConfig:
    """One server process's settings.

    ``store`` is a store location as ``--store`` takes it; ``artifacts`` the artifact root
    (fsspec URL or path) recorded when the server creates a new store; ``auth`` False serves
    every request as an admin (only allowed on a loopback address, see ``check_exposure``);
    ``create`` makes a missing store instead of refusing to start.
    """

    store: str
    artifacts: str | None = None
    auth: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    create: bool = False

    @property
    def url(self) -> str:
        host = self.host
        if host in {"0.0.0.0", "::"}:
            host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
