"""The continuous-training page's data: every loop iteration that judged a challenger of a
model (any pipeline), with what it trained on, the gold comparison and its interval, each
gate check, and the alias change it made (docs/loop.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from tympan.records.source import LocalSource
from tympan.server.routes._read import ReadChecks, Reader, StoreDep, json_response
from tympan.server.routes.models import Name, _visible

router = APIRouter(prefix="/api", tags=["models"], dependencies=ReadChecks)


@router.get("/models/{name}/loop")
def model_loop(principal: Reader, store: StoreDep, name: Name) -> Response:
    """The model's loop iterations, oldest first, each with ``promotion`` (the alias event
    whose evidence is its gate run, or null)."""
    from tympan.loop.history import model_iterations

    reg = _visible(store, principal, name)
    rows = model_iterations(LocalSource(store), name, reg.history(name, None))
    return json_response({"model": name, "iterations": rows})
