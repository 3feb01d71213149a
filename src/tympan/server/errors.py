"""One JSON error shape for every error the server answers with:

    {"error": {"type": "NotFoundError", "message": "no run with id 1a2b3c..."}}

TympanError subclasses map to status codes (``STATUS``); FastAPI's validation errors are 422
in the same shape; unknown routes 404, wrong methods 405. Bodies over the limit (413) and
anything unexpected (500, its traceback logged on the server and never sent) are answered by
``guard.Guard`` in the same shape.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from tympan import errors as tympan_errors
from tympan.errors import TympanError

log = logging.getLogger("tympan.server")

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


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    type_ = getattr(exc, "type", None) or _HTTP_TYPES.get(exc.status_code, "HTTPError")
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404 and detail == "Not Found" and _wants_page(request):
        from tympan.server.routes.pages import not_found_page

        return not_found_page()  # the UI's own "no such page", not raw JSON
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such page or API route"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = "this route does not accept that HTTP method"
    return error_response(exc.status_code, type_, detail, getattr(exc, "headers", None))


def _wants_page(request: Request) -> bool:
    """A browser asking for a page: a GET for HTML outside /api and /static."""
    path = request.url.path
    return (request.method == "GET" and "text/html" in request.headers.get("accept", "")
            and not path.startswith(("/api/", "/static/")))


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "ValidationError", _validation_message(exc))


def install(app: FastAPI) -> None:
    """Register the error handlers on ``app`` (the body limit is ``guard.Guard``'s)."""
    app.add_exception_handler(TympanError, _on_tympan_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
