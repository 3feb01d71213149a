"""Study records over HTTP, for ``tympan ablate``, ``tympan study``, ``tympan report``,
``tympan quantify`` and ``tympan findings`` run with ``TYMPAN_STORE=http://host:port``
(``tympan.study.remote.HttpStudies``).

Reads need scope read, running a study scope write. Each route calls what
:class:`~tympan.study.source.LocalStudies` does over a store, so a runner that reaches the
store through here follows the same rules as one beside it. A token bound to a project sees
and runs that project's studies only; another project's study answers 404 like one that
does not exist, and registering a study of another project is refused as logging a run of
it is.

    GET   /api/records/studies/resolve?ref=STUDY[&project=P]   the study, trials, runner
    GET   /api/records/studies/{id}/logs/{sha256}               a trial's captured output
    GET   /api/records/findings[?component=&metric=&project=]   the findings rows
    POST  /api/records/studies                                  register a study file
    POST  /api/records/studies/{id}/claim | release | beat      the runner's hold on it
    PATCH /api/records/studies/{id}/trials/{trial}              a trial's status, run, times
    POST  /api/records/studies/{id}/trials/{trial}/settle       after a runner that is gone
    PUT   /api/records/studies/{id}/trials/{trial}/log          its captured output
    POST  /api/records/studies/{id}/findings                    analyse and keep the findings
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tympan.errors import InvalidInputError, NotFoundError, StudyNotFoundError
from tympan.server.auth import Principal
from tympan.server.routes._read import (
    ReadChecks,
    Reader,
    StoreDep,
    Writer,
    json_response,
    scoped_project,
)
from tympan.server.routes.ingest import SHA256, Text
from tympan.store import Store, projects, studies
from tympan.study.records import TrialRow, load_from_store
from tympan.study.source import LocalStudies, Registration
from tympan.track import wire
from tympan.track.validate import check_text

router = APIRouter(prefix="/api/records", tags=["studies"], dependencies=ReadChecks)

StudyPath = Annotated[str, Path(pattern=r"^s[0-9a-z]{1,31}$", description="the study's id")]
TrialPath = Annotated[int, Path(ge=1, lt=2**62, description="the trial's id")]
_Strict = ConfigDict(extra="forbid")
_INT32 = 2**31 - 1
Line = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(
    lambda value: check_text(value, "name"))]
Time = Annotated[float, Field(ge=0, lt=2**53 / 1000, allow_inf_nan=False)]


@router.get("/studies/resolve")
def resolve(principal: Reader, store: StoreDep, ref: str, project: str | None = None
            ) -> Response:
    """The study an id, unique id prefix or name names (among those the token may see),
    with its stored file, trials, runner, and the listening-test metric of its runs."""
    from tympan.study.listening import listening_metrics

    stored = load_from_store(LocalStudies(store), ref, scoped_project(principal, project),
                             visible=principal.projects_filter())
    listening = listening_metrics(store, stored)
    return json_response({
        "id": stored.id, "name": stored.name, "project": stored.project,
        "spec": {"spec": stored.spec.model_dump(mode="json"), **stored.meta},
        "spec_hash": stored.spec_hash, "source": stored.source,
        "created_at": stored.created_at, "updated_at": stored.updated_at,
        "trials": [asdict(t) for t in stored.trials],
        "runner": list(stored.runner) if stored.runner else None,
        "listening": {run_id: wire.summary(s) for run_id, s in listening.items()},
    })


@router.get("/studies/{study_id}/logs/{sha256}")
def log(principal: Reader, store: StoreDep, study_id: StudyPath,
        sha256: Annotated[str, Path(pattern=SHA256)]) -> Response:
    """A trial's captured output (stdout and stderr), named by its sha256."""
    _visible(principal, store, study_id)
    with store.read() as conn:
        if not any(t.log_sha256 == sha256 for t in studies.trials_of(conn, study_id)):
            raise NotFoundError(f"study {study_id} has no trial log {sha256}")
    return Response(store.blobs.read(sha256), media_type="text/plain; charset=utf-8",
                    headers={"Content-Security-Policy": "sandbox"})


@router.get("/findings")
def findings(principal: Reader, store: StoreDep, component: str | None = None,
             metric: str | None = None, project: str | None = None) -> Response:
    """The findings rows of the studies the token may see, oldest study first."""
    rows = LocalStudies(store).finding_rows(component, metric,
                                            scoped_project(principal, project))
    return json_response({"rows": [dict(row._mapping) for row in rows]})


class TrialIn(BaseModel):
    model_config = _Strict
    key: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(
        lambda value: check_text(value, "trial key"))]
    arm: Annotated[str, Field(min_length=1, max_length=400), AfterValidator(
        lambda value: check_text(value, "arm"))]
    levels: dict[Line, Text]
    seed: int = Field(ge=-_INT32 - 1, le=_INT32)
    overrides: list[Text]


class MetaIn(BaseModel):
    """What the store keeps of a study file besides its text (see ``runner.register``)."""

    model_config = _Strict
    spec: dict[str, Any]  # a StudySpec, checked by the route
    path: Text
    config_sha256: Annotated[str, Field(pattern=SHA256)] | None
    trial_keys: list[Annotated[str, Field(max_length=64)]]
    data_path: Text | None


class RegistrationIn(BaseModel):
    model_config = _Strict
    project: Line
    name: Line
    file_name: Text
    meta: MetaIn
    digest: Annotated[str, Field(pattern=SHA256)]
    source: Text
    trials: list[TrialIn] = Field(max_length=100_000)
    force: bool = False


@router.post("/studies")
def register(body: RegistrationIn, principal: Writer, store: StoreDep) -> Response:
    """Register a study file (as ``tympan ablate`` does): its id; a changed file is refused
    (409) unless ``force``."""
    principal.check_project(body.project,
                            f"this token cannot run studies of project {body.project!r}")
    meta = body.meta.model_dump()
    meta["spec"] = _checked_spec(body.meta.spec, body.project, body.name)
    keys = [t.key for t in body.trials]
    if len(set(keys)) != len(keys):
        raise InvalidInputError("the trials' keys must differ: each names one trial")
    fields = body.model_dump(exclude={"force", "meta"}) | {"meta": meta}
    study_id = LocalStudies(store).register(Registration(**fields), force=body.force)
    return json_response({"id": study_id})


def _checked_spec(spec: dict[str, Any], project: str, name: str) -> dict[str, Any]:
    """The study file's validated spec, which must name the study and project registered."""
    from pydantic import ValidationError

    from tympan.study.spec import StudySpec

    try:
        checked = StudySpec.model_validate(spec)
    except (ValidationError, ValueError) as exc:
        raise InvalidInputError(f"meta.spec is not a valid study: {str(exc)[:300]}") from None
    if (checked.name, checked.project_name) != (name, project):
        raise InvalidInputError(f"meta.spec is study {checked.name!r} of project "
                                f"{checked.project_name!r}, not {name!r} of {project!r}")
    dumped = checked.model_dump(mode="json")
    if "\\u0000" in json.dumps(dumped):
        raise InvalidInputError("meta.spec contains a NUL character (\\x00), which cannot "
                                "be stored: remove it")
    return dumped


class RunnerIn(BaseModel):
    model_config = _Strict
    host: Annotated[str, Field(min_length=1, max_length=255)]
    pid: int = Field(ge=0, lt=2**31)


@router.post("/studies/{study_id}/claim")
def claim(study_id: StudyPath, body: RunnerIn, principal: Writer, store: StoreDep
          ) -> Response:
    """Become the study's runner (409 while another live runner holds it)."""
    _visible(principal, store, study_id)
    LocalStudies(store).claim(study_id, body.host, body.pid)
    return json_response({"id": study_id})


@router.post("/studies/{study_id}/release")
def release(study_id: StudyPath, body: RunnerIn, principal: Writer, store: StoreDep
            ) -> Response:
    _visible(principal, store, study_id)
    LocalStudies(store).release(study_id, body.host, body.pid)
    return json_response({"id": study_id})


@router.post("/studies/{study_id}/beat")
def beat(study_id: StudyPath, principal: Writer, store: StoreDep) -> Response:
    """The runner's heartbeat."""
    _visible(principal, store, study_id)
    LocalStudies(store).beat(study_id)
    return json_response({"id": study_id})


class TrialChangeIn(BaseModel):
    model_config = _Strict
    status: Literal["pending", "running", "finished", "failed", "timed_out",
                    "crashed"] | None = None
    run_id: Annotated[str, Field(pattern=r"^[0-9a-z]{1,32}$")] | None = None
    attempts: int | None = Field(default=None, ge=0, lt=2**31)
    error: Text | None = None
    started_at: Time | None = None
    ended_at: Time | None = None


@router.patch("/studies/{study_id}/trials/{trial_id}")
def change_trial(study_id: StudyPath, trial_id: TrialPath, body: TrialChangeIn,
                 principal: Writer, store: StoreDep) -> Response:
    """Set a trial's status, run, attempts, error or times (those the body names)."""
    _trial(principal, store, study_id, trial_id)
    LocalStudies(store).change_trial(study_id, trial_id, **body.model_dump(exclude_unset=True))
    return json_response({"id": trial_id})


class SettleIn(BaseModel):
    model_config = _Strict
    why: Text


@router.post("/studies/{study_id}/trials/{trial_id}/settle")
def settle(study_id: StudyPath, trial_id: TrialPath, body: SettleIn, principal: Writer,
           store: StoreDep) -> Response:
    """A trial a runner that is gone left: finished if its run finished, else crashed."""
    trial = _trial(principal, store, study_id, trial_id)
    status = LocalStudies(store).settle_trial(study_id, trial, body.why)
    return json_response({"id": trial_id, "status": status})


@router.put("/studies/{study_id}/trials/{trial_id}/log", openapi_extra={"requestBody": {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}})
async def put_log(study_id: StudyPath, trial_id: TrialPath, request: Request,
                  principal: Writer, store: StoreDep) -> Response:
    """Keep the body as the trial's captured output."""
    await run_in_threadpool(_trial, principal, store, study_id, trial_id)
    output = await request.body()
    sha256 = await run_in_threadpool(LocalStudies(store).put_log, study_id, trial_id, output)
    return json_response({"sha256": sha256})


@router.post("/studies/{study_id}/findings")
def record_findings(study_id: StudyPath, principal: Writer, store: StoreDep) -> Response:
    """Analyse the study from the stored runs and keep its findings; how many."""
    from tympan.study.analysis import analyse

    _visible(principal, store, study_id)
    local = LocalStudies(store)
    return json_response({"count": local.record_findings(analyse(local.load(study_id)))})


def _visible(principal: Principal, store: Store, study_id: str) -> Any:
    """The study's row, if the principal may see its project (else 404, as for none)."""
    missing = f"no study {study_id!r}"
    with store.read() as conn:
        row = studies.get(conn, study_id)
        if row is None:
            raise StudyNotFoundError(missing)
        principal.check_project(projects.names(conn)[row.project_id], missing)
    return row


def _trial(principal: Principal, store: Store, study_id: str, trial_id: int) -> TrialRow:
    """One of the study's trials (404 for another study's or none)."""
    _visible(principal, store, study_id)
    with store.read() as conn:
        for row in studies.trials_of(conn, study_id):
            if row.id == trial_id:
                return TrialRow.from_row(row)
    raise NotFoundError(f"study {study_id} has no trial {trial_id}")
