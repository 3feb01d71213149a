"""Run the web server for ``tympan ui`` and ``tympan server``: bind, announce the URL, serve.

FastAPI and uvicorn are imported here, inside ``serve``, never when the CLI starts.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time

from tympan.errors import InvalidInputError
from tympan.server.config import ServerConfig


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one. A clear error if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise InvalidInputError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --port "
            "or --host"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: ServerConfig, *, label: str, open_browser: bool = False,
          access_log: bool = False) -> None:
    """Serve ``config`` until SIGINT/SIGTERM; prints one line with the URL once it answers."""
    import uvicorn

    from tympan.server.app import create_app

    app = create_app(config)  # opens the store first: a bad store fails before we listen
    sock = bind(config.host, config.port)
    actual = ServerConfig(**{**config.__dict__, "port": sock.getsockname()[1]})
    _log_to_stderr()
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=access_log, server_header=False,
        timeout_graceful_shutdown=5, lifespan="on",
    ))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if not server.started:
            return
        auth = "token auth on" if config.auth else "no auth (loopback only)"
        sys.stdout.write(f"tympan {label}: serving {app.state.store.where} at {actual.url} "
                         f"({auth}); press Ctrl+C to stop\n")
        sys.stdout.flush()
        if open_browser:
            import webbrowser

            webbrowser.open(actual.url)

    threading.Thread(target=announce, name="tympan-announce", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _log_to_stderr() -> None:
    """Errors the server logs (tracebacks of 500s) go to stderr."""
    logger = logging.getLogger("tympan.server")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
