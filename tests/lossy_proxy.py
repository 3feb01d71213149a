"""A proxy in front of a real ``tympan server`` that loses answers: it forwards each request
and, for those its ``policy`` picks, closes the connection without passing the server's answer
on (the server applied the write; the client never hears so), or refuses the request unsent
(the server looks down). Exactly-once tests of remote logging run through it.

    with lossy_proxy(server.url, policy) as url:   # policy(method, path, body) -> Fate
        ...
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import httpx

Fate = Literal["forward", "lose", "refuse"]
Policy = Callable[[str, str, bytes], Fate]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@contextmanager
def lossy_proxy(upstream: str, policy: Policy) -> Iterator[str]:
    """The proxy's URL while it runs in a thread of this process."""
    client = httpx.Client(base_url=upstream, timeout=60.0)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fate = policy(self.command, self.path, body)
            if fate == "refuse":
                self.close_connection = True
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            answer = client.request(self.command, self.path, content=body, headers=headers)
            if fate == "lose":
                self.close_connection = True  # the write is applied; its answer never leaves
                return
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.daemon_threads = True
    thread = threading.Thread(target=proxy.serve_forever, name="lossy-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()
        client.close()
