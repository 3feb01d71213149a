"""What every HTTP request passes through before a route sees it (one pure-ASGI layer, so
streamed request and response bodies pass untouched):

1. ``Host`` must name this server (``hosts.py``: DNS rebinding), else 400.
2. Body limits. A request without a valid token may send ``UNAUTHENTICATED_BODY_BYTES``
   (64 KiB: ``POST /api/session`` needs a few hundred bytes), one with a token
   ``--max-body-mb``. The limit is checked on Content-Length before anything is read, and on
   the bytes as they arrive (a chunked body, or one that lies about its length, is cut off),
   so no body over it is ever held in memory or parsed. When a body may exceed the small
   limit, who is asking is worked out first; a token that came but is bad gets 401 at once.
3. Headers: ``X-Content-Type-Options: nosniff`` on every answer, ``Cache-Control: no-store``
   on JSON (API answers hold runs and are never cached), unless a route chose its own.
4. One access line per request to the ``tympan.server.access`` logger: client, method, path,
   query with secret-named parameters masked (``?token=***``), status, time, and the token's
   public id. Tokens, cookies and headers are never logged.
5. Anything unexpected becomes a JSON 500; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tympan.errors import TympanError
from tympan.server.auth import LAUNCH_ADMIN, authenticate, known_principal
from tympan.server.config import UNAUTHENTICATED_BODY_BYTES
from tympan.server.errors import HTTPError, error_response, status_of
from tympan.server.hosts import HostNames, host_name
from tympan.store.location import redact_query

log = logging.getLogger("tympan.server")
access = logging.getLogger("tympan.server.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLargeError(HTTPError):
    def __init__(self, limit: int, authenticated: bool) -> None:
        if authenticated:
            message = (f"request body is larger than the server's limit of {limit} bytes "
                       "(tympan server --max-body-mb)")
        else:
            message = (f"a request without a valid token may send at most {limit} bytes: "
                       "send the token with it (Authorization: Bearer <token>)")
        super().__init__(413, message)


class Guard:
    def __init__(self, app: ASGIApp, hosts: HostNames, max_body_bytes: int) -> None:
        self.app = app
        self.hosts = hosts
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 0

        async def guarded_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _with_safe_headers(list(message.get("headers", [])))
            await send(message)

        try:
            await self._serve(scope, receive, guarded_send, lambda: status != 0)
        finally:
            if access.isEnabledFor(logging.INFO):
                access.info("%s", _access_line(scope, status, time.perf_counter() - began))

    async def _serve(self, scope: Scope, receive: Receive, send: Send,
                     started: Callable[[], bool]) -> None:
        host = _header(scope, b"host")
        if not self.hosts.allows(host):
            await error_response(400, "UntrustedHostError", (
                f"this server does not answer to the host name {host_name(host) or '(none)'!r}"
                ": open it by the address it printed, or, behind a reverse proxy, start it "
                "with --allow-host NAME"))(scope, receive, send)
            return
        try:
            limit, authenticated = await self._body_limit(scope)
        except (HTTPError, TympanError) as exc:
            await _error(exc)(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _error(BodyTooLargeError(limit, authenticated))(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit, authenticated)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLargeError as exc:
            if not started():
                await _error(exc)(scope, receive, send)
        except Exception:
            log.exception("unexpected error serving %s %s", scope.get("method"),
                          scope.get("path"))
            if not started():
                await error_response(500, "InternalError", "internal server error; the "
                                     "server logged the details")(scope, receive, send)

    async def _body_limit(self, scope: Scope) -> tuple[int, bool]:
        """The body limit for this request, and whether it comes with a valid token."""
        declared = _content_length(scope)
        small = min(self.limit, UNAUTHENTICATED_BODY_BYTES)
        may_be_large = (declared > small if declared is not None
                        else _header(scope, b"transfer-encoding") != "")
        if not may_be_large:  # the server (h11) never reads past a declared Content-Length
            return self.limit, True
        principal = await run_in_threadpool(authenticate, Request(scope))
        return (self.limit, True) if principal is not None else (small, False)


def _error(exc: HTTPError | TympanError) -> Any:
    if isinstance(exc, HTTPError):
        return error_response(exc.status_code, exc.type, exc.detail,
                              getattr(exc, "headers", None))
    return error_response(status_of(exc), type(exc).__name__, str(exc))


def _with_safe_headers(headers: list[Any]) -> list[Any]:
    names = {bytes(name).lower() for name, _ in headers}
    if b"x-content-type-options" not in names:
        headers.append((b"x-content-type-options", b"nosniff"))
    content_type = next((bytes(v) for k, v in headers if bytes(k).lower() == b"content-type"),
                        b"")
    if content_type.startswith(b"application/json") and b"cache-control" not in names:
        headers.append((b"cache-control", b"no-store"))
    return headers


def _access_line(scope: Scope, status: int, seconds: float) -> str:
    client = scope.get("client") or ("-", 0)
    query = scope.get("query_string", b"").decode("latin-1")
    target = scope.get("path", "") + (f"?{redact_query(query)}" if query else "")
    principal = known_principal(Request(scope))
    who = ("" if principal is None else " tympan-ui" if principal is LAUNCH_ADMIN
           else f" token {principal.token_id}")
    return (f'{client[0]}:{client[1]} "{scope.get("method")} {target}" {status or "-"} '
            f"{seconds * 1000:.1f} ms{who}")


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


def _content_length(scope: Scope) -> int | None:
    text = _header(scope, b"content-length")
    try:
        return int(text) if text else None
    except ValueError:
        return None
