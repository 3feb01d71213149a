"""Run management routes: rename, retag, annotate, archive and delete runs (write scope), and
the audit trail of those changes (read scope). Shapes in docs/api.md.

The actor recorded is the token (``token:<id> (<name>)``), or the local user for ``tympan
ui``'s launch token, never what a client says. A project-bound token may change only its
project's runs; any other run answers 404, exactly like one that does not exist. Every rule
lives in ``tympan.track.manage``, which these routes run.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from tympan.errors import NotFoundError
from tympan.registry.actor import local_user
from tympan.server.auth import Principal
from tympan.server.routes._read import ReadChecks, Reader, StoreDep, Writer, json_response
from tympan.store import Store, projects, run_events
from tympan.track.manage import MAX_RUNS, RunEdit, archive_runs, delete_runs, edit_run, project_of

router = APIRouter(prefix="/api", tags=["runs"], dependencies=ReadChecks)

TagList = Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=1000)]
RunIds = Annotated[list[Annotated[str, Field(max_length=32)]],
                   Field(min_length=1, max_length=MAX_RUNS)]


class RunEditIn(BaseModel):
    name: str | None = Field(None, max_length=200)
    tags: TagList | None = None
    add_tags: TagList = []
    remove_tags: TagList = []
    note: str | None = Field(None, max_length=100_000)
    archived: bool | None = None


class RunsIn(BaseModel):
    runs: RunIds
    archived: bool = True


class DeleteIn(BaseModel):
    runs: RunIds


def actor(principal: Principal) -> str:
    """Who the audit trail names for this principal."""
    if principal.token_id is None:  # `tympan ui`'s launch token: whoever started it
        return local_user().name
    return f"token:{principal.token_id}" + (f" ({principal.name})" if principal.name else "")


def _visible(store: Store, principal: Principal, run_ids: list[str]) -> list[str]:
    """The ids, after checking every run exists and the principal may see it (else 404)."""
    ids = list(dict.fromkeys(run_ids))
    found = project_of(store, ids)
    for run_id in ids:
        if run_id not in found or not principal.can_see(found[run_id]):
            raise NotFoundError(f"no run with id {run_id!r}")
    return ids


@router.patch("/runs/{run_id}")
def patch_run(body: RunEditIn, principal: Writer, store: StoreDep, run_id: str) -> Response:
    """Rename, retag, annotate, archive or unarchive one run; its fields as they are now
    come back, with ``changed``: what this request changed."""
    _visible(store, principal, [run_id])
    edit = RunEdit(name=body.name, tags=body.tags, add_tags=body.add_tags,
                   remove_tags=body.remove_tags, note=body.note)
    who = actor(principal)
    if body.archived is not None and edit.is_empty():
        changed = archive_runs(store, [run_id], who, body.archived)
        return json_response(_fields(store, run_id, ["archived"] if changed else []))
    result = edit_run(store, run_id, edit, who)
    if body.archived is not None and archive_runs(store, [run_id], who, body.archived):
        result["changed"] = sorted([*result["changed"], "archived"])
    return json_response(_fields(store, run_id, result["changed"]))


@router.post("/runs/archive")
def archive(body: RunsIn, principal: Writer, store: StoreDep) -> Response:
    """Archive (``archived: false``: unarchive) several runs; the ids changed come back."""
    ids = _visible(store, principal, body.runs)
    changed = archive_runs(store, ids, actor(principal), body.archived)
    return json_response({"archived": body.archived, "changed": changed})


@router.post("/runs/delete")
def delete_many(body: DeleteIn, principal: Writer, store: StoreDep) -> Response:
    """Delete several runs, their child runs and the blobs no other record names."""
    ids = _visible(store, principal, body.runs)
    deleted = delete_runs(store, ids, actor(principal))
    return json_response({"deleted": deleted.runs, "children": deleted.children,
                          "blob_files": deleted.blob_files, "blob_bytes": deleted.blob_bytes})


@router.delete("/runs/{run_id}")
def delete_one(principal: Writer, store: StoreDep, run_id: str) -> Response:
    """Delete one run (and its child runs); the same answer as ``POST /api/runs/delete``."""
    return delete_many(DeleteIn(runs=[run_id]), principal, store)


@router.get("/events")
def list_events(principal: Reader, store: StoreDep, run: str | None = None,
                project: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """The audit trail of run management, newest first: of one run (deleted ones too), of a
    project, or of every project the token can see."""
    only = principal.projects_filter()
    with store.read() as conn:
        names = projects.names(conn)
        wanted = project if project is not None else only
        if only is not None and wanted != only:
            raise NotFoundError(f"no project {project!r}")
        ids = None if wanted is None else [i for i, n in names.items() if n == wanted]
        if ids == [] and project is not None:
            raise NotFoundError(f"no project {project!r}")
        rows = run_events.listed(conn, run_id=run, project_ids=ids, limit=limit)
    return json_response({"events": [
        {"run_id": r.run_id, "project": names.get(r.project_id), "action": r.action,
         "actor": r.actor, "detail": r.detail, "at": r.at} for r in rows]})


def _fields(store: Store, run_id: str, changed: list[str]) -> dict:
    from tympan.store import runs

    with store.read() as conn:
        row = runs.get(conn, run_id)
    return {"id": run_id, "name": row.name, "tags": list(row.tags or []), "note": row.note,
            "archived_at": row.archived_at, "changed": changed}
