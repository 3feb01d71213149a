"""What the routes share: the scope dependencies (one spelling each), project scoping, JSON
rendering."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from tympan.errors import InvalidInputError, NotFoundError
from tympan.records.export import json_safe
from tympan.records.record import RunRecord, run_by_id
from tympan.server.auth import Principal, require
from tympan.server.deps import get_store
from tympan.store import Store

Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
StoreDep = Annotated[Store, Depends(get_store)]


def json_response(content: Any, safe: bool = False) -> Response:
    """``content`` as JSON; non-finite floats become "NaN"/"Infinity" unless ``safe`` says
    the content has none (chart series, already turned into nulls)."""
    body = json.dumps(content if safe else json_safe(content), allow_nan=False,
                      separators=(",", ":"))
    return Response(body, media_type="application/json")


def visible_run(store: Store, principal: Principal, run_id: str) -> RunRecord:
    """The run with this id, if the principal may see its project (else 404, the same as a
    run that does not exist)."""
    record = run_by_id(store, run_id)
    principal.check_project(record.project, f"no run with id {run_id!r}")
    return record


def scoped_project(principal: Principal, project: str | None) -> str | None:
    """The project a list is limited to: the one asked for, or the token's own."""
    only = principal.projects_filter()
    if only is None:
        return project
    if project is not None and project != only:
        raise NotFoundError(f"no project {project!r}")
    return only


def listed(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated query values, flattened: ``a,b`` ``c`` -> a, b, c."""
    return [part.strip() for value in values or [] for part in value.split(",")
            if part.strip()]


def no_nul_bytes(request: Request) -> None:
    """Refuse NUL characters in the path or query (no name, key or id holds one, and
    PostgreSQL cannot even compare text with them)."""
    if "\x00" in request.url.path or any("\x00" in k or "\x00" in v
                                         for k, v in request.query_params.multi_items()):
        raise InvalidInputError("the request's path or query holds a NUL character")


ReadChecks = [Depends(no_nul_bytes)]
