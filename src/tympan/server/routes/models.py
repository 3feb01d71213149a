"""The model registry's routes: models, versions, aliases and their history, cards, the files
a version loads from, and registering, moving aliases and adding reports.

Reading needs a read token, registering and changing aliases write, and a protected alias
admin (with ``admin: true`` in the request) unless the evidence is a gate that passed. A
project-bound token sees only its project's models; any other model answers 404, exactly
like one that does not exist. The actor in the history is the token, never what the client
says. Every rule lives in ``tympan.registry.local``, which these routes run.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from tympan.errors import NotFoundError
from tympan.registry.actor import Actor, local_user
from tympan.registry.backend import AliasChange, NewVersion
from tympan.registry.local import LocalRegistry
from tympan.registry.records import holder_at
from tympan.server.auth import Principal
from tympan.server.routes._read import (
    Admin,
    ReadChecks,
    Reader,
    StoreDep,
    Writer,
    json_response,
    scoped_project,
)
from tympan.store import Store
from tympan.store import models as model_records
from tympan.store.models import ModelRef, check_alias, check_name

router = APIRouter(prefix="/api", tags=["models"], dependencies=ReadChecks)



def _model_name(name: str) -> str:
    return check_name(name)


def _version_number(version: int) -> int:
    if not 1 <= version < 2**31:  # the column's range on both backends
        raise NotFoundError(f"no version {version}")
    return version


Name = Annotated[str, Depends(_model_name)]
Version = Annotated[int, Depends(_version_number)]


def registry(store: Store, principal: Principal) -> LocalRegistry:
    if principal.token_id is None:  # auth off (`tympan ui` on loopback): the local user
        return LocalRegistry(store, local_user(admin=True))
    label = f"token:{principal.token_id}" + (f" ({principal.name})" if principal.name else "")
    return LocalRegistry(store, Actor(label, admin=principal.allows("admin")))


def _visible(store: Store, principal: Principal, name: str) -> LocalRegistry:
    """The registry, after checking the principal may see model ``name`` (404 otherwise)."""
    reg = registry(store, principal)
    message = f"no model {name!r} in the registry"
    try:
        model = reg.model(name)
    except NotFoundError:
        raise NotFoundError(message) from None
    principal.check_project(model.project, message)
    return reg


@router.get("/models")
def list_models(principal: Reader, store: StoreDep, project: str | None = None) -> Response:
    """The models the token can see, with their latest version and aliases."""
    found = registry(store, principal).models(scoped_project(principal, project))
    return json_response({"models": [m.as_dict() for m in found]})


@router.get("/models/{name}")
def get_model(principal: Reader, store: StoreDep, name: Name) -> Response:
    """A model, its versions (newest first) and where its aliases point."""
    reg = _visible(store, principal, name)
    return json_response(reg.model(name).as_dict() | {
        "versions": [v.as_dict() for v in reg.versions(name)]})


@router.get("/models/{name}/versions/{version}")
def get_version(principal: Reader, store: StoreDep, name: Name, version: Version) -> Response:
    """One version: weights, recipe, config, signature, lineage, aliases, reports."""
    reg = _visible(store, principal, name)
    return json_response(reg.version(ModelRef(name, version=version)).as_dict())


@router.get("/models/{name}/aliases/{alias}")
def resolve_alias(principal: Reader, store: StoreDep, name: Name, alias: str) -> Response:
    """The version the alias names now."""
    reg = _visible(store, principal, name)
    return json_response(reg.version(ModelRef(name, alias=check_alias(alias))).as_dict())


@router.get("/models/{name}/history")
def alias_history(principal: Reader, store: StoreDep, name: Name, alias: str | None = None,
                  at: Annotated[float | None, Query(description="epoch seconds")] = None
                  ) -> Response:
    """Every alias event (of one alias), oldest first; with ``alias`` and ``at``, also which
    version the alias named at that time."""
    reg = _visible(store, principal, name)
    events = reg.history(name, check_alias(alias) if alias is not None else None)
    body: dict[str, Any] = {"events": [e.as_dict() for e in events]}
    if alias is not None and at is not None:
        held, since = holder_at(events, at)
        body["at"] = {"time": at, "version": held, "since": since.as_dict() if since else None}
    return json_response(body)


@router.get("/models/{name}/versions/{version}/card")
def model_card(principal: Reader, store: StoreDep, name: Name, version: Version) -> Response:
    """The version's model card: its data, and the same as Markdown."""
    from tympan.registry.card import build_card, card_markdown

    reg = _visible(store, principal, name)
    card = build_card(store, reg.version(ModelRef(name, version=version)), reg)
    return json_response({"card": card, "markdown": card_markdown(card)})


@router.get("/models/{name}/versions/{version}/files/{which}")
def version_file(principal: Reader, store: StoreDep, name: Name, version: Version,
                 which: str) -> Response:
    """The bytes a version loads from: ``weights`` or ``code`` (a zip of the recipe)."""
    reg = _visible(store, principal, name)
    found = reg.version(ModelRef(name, version=version))
    sha = {"weights": found.sha256, "code": found.code_sha256}.get(which)
    if sha is None:
        raise NotFoundError(f"version {version} of {name!r} has no file {which!r} (files: "
                            "weights, code)")
    media = "application/zip" if which == "code" else "application/octet-stream"
    return Response(store.blobs.read(sha), media_type=media,
                    headers={"X-Content-SHA256": sha, "X-Content-Type-Options": "nosniff",
                             "Content-Disposition": f'attachment; filename="{which}"'})


class AliasIn(BaseModel):
    version: int = Field(ge=1)
    reason: str = Field("", max_length=2000)
    evidence: str | None = Field(None, max_length=2000)
    admin: bool = False


@router.put("/models/{name}/aliases/{alias}")
def set_alias(body: AliasIn, principal: Writer, store: StoreDep, name: Name,
              alias: str) -> Response:
    """Point the alias at a version; the event recorded is returned."""
    reg = _visible(store, principal, name)
    event = reg.change_alias(AliasChange(name, check_alias(alias), body.version, body.reason,
                                         body.evidence, body.admin))
    return json_response(event.as_dict())


@router.delete("/models/{name}/aliases/{alias}")
def delete_alias(principal: Writer, store: StoreDep, name: Name, alias: str,
                 reason: Annotated[str, Query(max_length=2000)] = "",
                 admin: bool = False) -> Response:
    """Remove the alias (its history stays); the event recorded is returned."""
    reg = _visible(store, principal, name)
    event = reg.change_alias(AliasChange(name, check_alias(alias), None, reason, None, admin))
    return json_response(event.as_dict())


class ProtectIn(BaseModel):
    alias: str = Field(min_length=1, max_length=100)
    protected: bool = True
    reason: str = Field("", max_length=2000)


@router.post("/models/{name}/protected")
def protect(body: ProtectIn, principal: Admin, store: StoreDep, name: Name) -> Response:
    """Protect an alias of the model (or stop protecting it); admin only."""
    reg = _visible(store, principal, name)
    event = reg.protect(name, check_alias(body.alias), body.protected, body.reason, admin=True)
    return json_response(event.as_dict())


class ReportIn(BaseModel):
    kind: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    data: dict[str, Any]
    run_id: str | None = Field(None, max_length=32)


@router.post("/models/{name}/versions/{version}/reports")
def add_report(body: ReportIn, principal: Writer, store: StoreDep, name: Name,
               version: Version) -> Response:
    """Record what a later step measured on the version (export, latency, gate...)."""
    reg = _visible(store, principal, name)
    found = reg.add_report(ModelRef(name, version=version), body.kind, body.name, body.data,
                           body.run_id)
    return json_response(found.as_dict())


class VersionIn(BaseModel):
    run_id: str = Field(min_length=1, max_length=32)
    artifact: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    code_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    recipe: dict[str, Any]
    config: dict[str, Any]
    signature: dict[str, Any]
    lineage: dict[str, Any]
    parameters: int | None = Field(None, ge=0)
    parent: str | None = Field(None, max_length=400)
    description: str = Field("", max_length=10000)


@router.post("/models/{name}/versions")
def register(body: VersionIn, principal: Writer, store: StoreDep, name: Name) -> Response:
    """Register the next version from a run of a project the token may write; the code
    snapshot is uploaded first (``PUT /api/ingest/blobs/{sha256}``)."""
    from tympan.records.record import run_by_id

    try:
        run = run_by_id(store, body.run_id)
    except NotFoundError:
        raise NotFoundError(f"no run with id {body.run_id!r}") from None
    principal.check_project(run.project, f"no run with id {body.run_id!r}")
    with store.read() as conn:
        existing = model_records.get(conn, name)
    if existing is not None:  # another project's model is one this token cannot see
        principal.check_project(existing.project, f"no model {name!r} in the registry")
    new = NewVersion(model=name, **body.model_dump())
    return json_response(registry(store, principal).register(new, None).as_dict())
