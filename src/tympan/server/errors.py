"""One JSON error shape for every error the server answers with:

    {"error": {"type": "NotFoundError", "message": "no run with id 1a2b3c..."}}

TympanError subclasses map to status codes (``STATUS``); FastAPI's validation errors are 422
in the same shape; unknown routes 404, wrong methods 405; request bodies over the limit 413
(checked on Content-Length and again on the bytes actually received); anything unexpected is
500 with a generic message, its traceback logged on the server and never sent to the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tympan import errors as tympan_errors
from tympan.errors import TympanError

log = logging.getLogger("tympan.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Most specific first: the first class an error is an instance of decides its status.
STATUS: list[tuple[type[TympanError], int]] = [
    (tympan_errors.NotFoundError, 404),
    (tympan_errors.ProtectedAliasError, 403),
    (tympan_errors.StudyBusyError, 409),
    (tympan_errors.StudyChangedError, 409),
    (tympan_errors.RunStateError, 409),
    (tympan_errors.InvalidInputError, 400),
    (tympan_errors.MetricValueError, 400),
    (tympan_errors.StudyError, 400),
    (tympan_errors.StoreUnavailableError, 503),
    (tympan_errors.MissingDependencyError, 501),
    (tympan_errors.StoreError, 500),
    (tympan_errors.SettingsError, 500),
]

_HTTP_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    415: "UnsupportedMediaTypeError",
    422: "ValidationError",
}


class HTTPError(HTTPException):
    """An error a route or dependency raises with its status, type and message chosen."""

    def __init__(self, status: int, message: str, *, type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail=message, headers=headers)
        self.type = type or _HTTP_TYPES.get(status, "HTTPError")


class BodyTooLargeError(HTTPError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the server's limit of {limit} "
                              "bytes (tympan server --max-body-mb)")


def status_of(exc: TympanError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(type_: str, message: str) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message}}


def error_response(status: int, type_: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(type_, message), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:10]:
        where = [str(p) for p in err.get("loc", ())]
        place = f"{where[0]} {'.'.join(where[1:])}".strip() if where else "request"
        # A ValueError from our own validators (tympan.track.validate) reads as its message.
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{place}: {message}")
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


async def _on_tympan_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TympanError)
    status = status_of(exc)
    if status >= 500:
        log.error("store or server error: %s", exc)
    return error_response(status, type(exc).__name__, str(exc) or type(exc).__name__)


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    type_ = getattr(exc, "type", None) or _HTTP_TYPES.get(exc.status_code, "HTTPError")
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such page or API route"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = "this route does not accept that HTTP method"
    return error_response(exc.status_code, type_, detail, getattr(exc, "headers", None))


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "ValidationError", _validation_message(exc))


def install(app: FastAPI, max_body_bytes: int) -> None:
    """Register the error handlers and the body-limit / last-resort middleware on ``app``."""
    app.add_exception_handler(TympanError, _on_tympan_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_middleware(GuardMiddleware, max_body_bytes=max_body_bytes)


class GuardMiddleware:
    """Refuse oversized bodies with 413 and turn unexpected exceptions into a JSON 500.

    Pure ASGI (no BaseHTTPMiddleware), so streamed request and response bodies pass through
    untouched. Bytes are counted as they arrive: a chunked body without Content-Length, or one
    that lies about its length, is cut off at the limit too.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            exc = BodyTooLargeError(self.limit)
            await error_response(413, exc.type, exc.detail)(scope, receive, send)
            return
        started = False
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError as exc:
            if not started:
                await error_response(413, exc.type, exc.detail)(scope, receive, send)
        except Exception:
            log.exception("unexpected error serving %s %s", scope.get("method"),
                          scope.get("path"))
            if not started:
                response = error_response(500, "InternalError",
                                          "internal server error; the server logged the details")
                await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
