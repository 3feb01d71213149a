"""``live_server``: a real tympan server process on a free loopback port, for API tests.

    with live_server(store_url, auth=False) as url:          # `tympan ui` (its launch token)
        httpx.get(f"{url}/api/runs", headers=url.headers)
    with live_server(store_url, extra_args=["--max-body-mb", "1"]) as url:   # `tympan server`
    with served(tmp_path) as server:     # on a fixed port: server.kill(), then server.start()

The process is started exactly as a user starts it (``python -m tympan.cli.app ...``) with
``--port 0``; the URL is read from the line it prints once it answers. It is yielded as a
``ServerURL``: the base URL (a str), with the launch token `tympan ui` printed in it, the
process id and its stderr file. On exit it gets SIGTERM, then SIGKILL after 10 s.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tympan.store import open_store, tokens

_URL = re.compile(r" at (http://\S+) ")


class ServerFailed(RuntimeError):
    """The server process did not come up; the message holds what it printed."""


class ServerURL(str):
    """A live server's base URL (``http://127.0.0.1:PORT``), with what tests need besides."""

    token: str | None  # `tympan ui`'s launch token; None for `tympan server`
    pid: int
    stderr: Path

    @property
    def headers(self) -> dict[str, str]:
        """The launch token as an Authorization header ({} for `tympan server`)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def sign_in_link(self) -> str:
        return f"{self}/?token={self.token}"


def server_command(store_url: str, *, auth: bool = True, extra_args: Sequence[str] = ()
                   ) -> list[str]:
    """The command line: `tympan server` with auth, else `tympan ui --no-open`."""
    base = [sys.executable, "-m", "tympan.cli.app"]
    if auth:
        return [*base, "server", "--store", store_url, "--host", "127.0.0.1", "--port", "0",
                *extra_args]
    return [*base, "ui", "--store", store_url, "--host", "127.0.0.1", "--port", "0",
            "--no-open", *extra_args]


@contextmanager
def live_server(
    store_url: str,
    *,
    auth: bool = True,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Start a server over ``store_url``; yields its base URL (``http://127.0.0.1:PORT``)."""
    log_dir = Path(tempfile.mkdtemp(prefix="tympan-server-"))
    out_path, err_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            server_command(store_url, auth=auth, extra_args=extra_args),
            stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    try:
        printed = _wait_until_up(proc, out_path, err_path, timeout)
        base, _, token = printed.partition("/?token=")
        url = ServerURL(base)
        url.token, url.pid, url.stderr = token or None, proc.pid, err_path
        yield url
    finally:
        stop(proc)


def _wait_until_up(proc: subprocess.Popen, out_path: Path, err_path: Path,
                   timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url = None
    with httpx.Client(timeout=2) as client:  # one client for the polls, as in Server.start_with
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerFailed(f"server exited with {proc.returncode}:\n"
                                   f"{out_path.read_text()}\n{err_path.read_text()}")
            if url is None:
                found = _URL.search(out_path.read_text())
                url = found.group(1) if found else None
            if url is not None:
                try:
                    base = url.partition("/?token=")[0]
                    if client.get(f"{base}/api/health").status_code == 200:
                        return url
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
    stop(proc)
    raise ServerFailed(f"server did not answer within {timeout} s:\n"
                       f"{out_path.read_text()}\n{err_path.read_text()}")


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Server:
    """A `tympan server` process on a fixed port, so it can be killed and started again."""

    def __init__(self, store: str, log_dir: Path) -> None:
        self.store = store
        self.log_dir = log_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.start_with([])

    def start_with(self, extra_args: list[str]) -> None:
        command = server_command(self.store, auth=True, extra_args=extra_args)
        command[command.index("--port") + 1] = str(self.port)
        self.starts += 1
        log = open(self.log_dir / f"server-{self.starts}.txt", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        deadline = time.monotonic() + 60
        # One client for the polls: each httpx.get builds an SSL context (tens of ms of CPU),
        # and polling with them took a core from the server it was waiting for.
        with httpx.Client(timeout=1) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.output()
                try:
                    if client.get(f"{self.url}/api/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    time.sleep(0.05)
        raise AssertionError(f"server did not come up:\n{self.output()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("server-*.txt")))


def make_token(store: str, scope: str = "write", project: str | None = None) -> str:
    with open_store(store, create=True) as opened, opened.write() as conn:
        text, _ = tokens.create(conn, scope, project=project)
    return text


@contextmanager
def served(tmp: Path) -> Iterator[Server]:
    store = str(tmp / "store")
    open_store(store, create=True).close()
    server = Server(store, tmp)
    server.start()
    try:
        yield server
    finally:
        server.stop()
