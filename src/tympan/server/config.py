"""What a server process serves and how: the store, auth, the request body limit, the address."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PORT = 8787
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024  # artifacts arrive in request bodies
# A request without a valid token may send no more than this: enough for POST /api/session,
# small enough that a stranger cannot make the server hold (or parse) a large body.
UNAUTHENTICATED_BODY_BYTES = 64 * 1024


def new_launch_token() -> str:
    """A per-launch secret for ``tympan ui`` (256 random bits, URL-safe)."""
    import secrets  # not at import: `tympan --help` imports this module for DEFAULT_PORT

    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ServerConfig:
    """One server process's settings.

    ``store`` is a store location as ``--store`` takes it; ``artifacts`` the artifact root
    (fsspec URL or path) recorded when the server creates a new store; ``auth`` accepts the
    store's tokens (``tympan token create``); ``launch_token`` is ``tympan ui``'s per-launch
    secret, an admin of every project for as long as this process runs (None: not accepted).
    Every request needs one or the other. ``allowed_hosts`` are the names, besides this
    machine's own, that the ``Host`` header may carry (a reverse proxy's; ``*.lab.example``
    matches any subdomain); ``create`` makes a missing store instead of refusing to start.
    """

    store: str
    artifacts: str | None = None
    auth: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    create: bool = False
    allowed_hosts: tuple[str, ...] = ()
    launch_token: str | None = field(default=None, repr=False)  # never in a repr or a log

    def __post_init__(self) -> None:
        if not self.auth and not self.launch_token:
            raise ValueError("a server needs token auth or a launch token: nothing is "
                             "served to anonymous clients")

    @property
    def url(self) -> str:
        host = self.host
        if host in {"0.0.0.0", "::"}:
            host = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def sign_in_url(self) -> str:
        """The URL to open in a browser: with the launch token, when there is one."""
        return f"{self.url}/?token={self.launch_token}" if self.launch_token else self.url


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
