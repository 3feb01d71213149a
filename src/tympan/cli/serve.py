"""Run the web server for ``tympan ui`` and ``tympan server``: bind, announce the URL, serve.

FastAPI and uvicorn are imported here, inside ``serve``, never when the CLI starts.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tympan.errors import InvalidInputError
from tympan.server.config import ServerConfig
from tympan.store.location import redact

if TYPE_CHECKING:
    import uvicorn


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one. A clear error if taken.

    The socket is made with ``proto=IPPROTO_TCP``: asyncio sets TCP_NODELAY only on
    connections whose socket says so, and without it every keep-alive response waits ~40 ms
    for the client's delayed ACK (Nagle). TCP_NODELAY is also set here, for good measure:
    Linux hands it on to accepted connections.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    """Serve ``config`` until SIGINT/SIGTERM; prints one line with the URL once it answers.

    ``access_log`` shows one line per request on stderr (``tympan server``); errors and
    their tracebacks always go there. A browser is opened through a private file, never
    with the token on a command line other users of the machine could read.
    """
    import uvicorn

    from tympan.server.app import create_app

    app = create_app(config)  # opens the store first: a bad store fails before we listen
    app.state.store.blobs.check_client()  # and so does an s3:// root without its client
    sock = bind(config.host, config.port)
    actual = replace(config, port=sock.getsockname()[1])
    _log_to_stderr(access_log)
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=False, server_header=False,
        timeout_graceful_shutdown=5, lifespan="on",
    ))
    private = Path(tempfile.mkdtemp(prefix="tympan-ui-"))  # mode 0700: this user's only

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.02)
        if not server.started:
            return
        sys.stdout.write(f"tympan {label}: serving {app.state.store.where} at "
                         f"{actual.sign_in_url} ({_auth_words(actual)}); press Ctrl+C to stop\n")
        sys.stdout.flush()
        if open_browser:
            import webbrowser

            webbrowser.open(_redirect_page(private, actual.sign_in_url).as_uri())

    threading.Thread(target=announce, name="tympan-announce", daemon=True).start()
    try:
        run_until_stopped(server, sock)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def run_until_stopped(server: uvicorn.Server, sock: socket.socket) -> None:
    """Run a uvicorn ``server`` on ``sock`` until Ctrl+C or SIGTERM, then close the socket.
    uvicorn re-raises the SIGTERM it stopped on; it exits through Python here, so the
    caller's ``finally`` runs."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main else None
    try:
        server.run(sockets=[sock])
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        sock.close()


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _auth_words(config: ServerConfig) -> str:
    if config.launch_token and config.auth:
        return "this launch's token, in the URL, or a store token"
    if config.launch_token:
        return "sign in with this launch's token, in the URL"
    return "token auth on"


def _redirect_page(folder: Path, url: str) -> Path:
    """A page readable by this user only that sends the browser on to ``url``."""
    page = folder / "open.html"
    with contextlib.suppress(FileNotFoundError):
        page.unlink()
    fd = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    target = html.escape(url, quote=True)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f'<!doctype html><meta charset="utf-8"><title>tympan</title>'
                  f'<meta http-equiv="refresh" content="0;url={target}">'
                  f'<p><a href="{target}">Open tympan</a></p>\n')
    return page


class _RedactingFormatter(logging.Formatter):
    """Log lines (tracebacks included) with URL credentials masked (store.location.redact)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _log_to_stderr(access_log: bool) -> None:
    """Errors the server logs (tracebacks of 500s) go to stderr, and with ``access_log`` one
    line per request."""
    logger = logging.getLogger("tympan.server")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_RedactingFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logging.getLogger("tympan.server.access").setLevel(
        logging.INFO if access_log else logging.WARNING)
