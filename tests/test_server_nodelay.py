"""Responses on a kept-alive connection go out at once (issue 17): the socket ``tympan ui``
and ``tympan server`` listen on makes uvicorn's connections TCP_NODELAY, so a response body
never waits ~40 ms for the client's delayed ACK. Checked on the connections a real uvicorn
server accepts on ``bind()``'s socket, not by timing them."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tympan.cli.serve import bind

ACCEPTED: list[int] = []  # TCP_NODELAY of each connection the server accepted


class _Recording(H11Protocol):
    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        sock = transport.get_extra_info("socket")
        ACCEPTED.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        super().connection_made(transport)


async def _app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"x" * 5000})


def test_connections_accepted_on_the_listening_socket_are_tcp_nodelay() -> None:
    ACCEPTED.clear()
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app, http=_Recording, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):  # one kept-alive connection
                assert client.get("/").status_code == 200
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/").status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert len(ACCEPTED) == 2
    assert all(ACCEPTED), ACCEPTED
