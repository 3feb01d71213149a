"""Remote logging: what a training script with ``TYMPAN_STORE=http://HOST:PORT`` sends.

Every route needs a token with scope write; a token bound to a project can only write runs
of that project. Each route validates its input, then calls the same
:class:`~tympan.track.local.LocalTransport` a local run writes through, so a run logged over
HTTP is stored by exactly the code that stores a local one. Every write is idempotent: a
client that lost a response sends the same request again and nothing is stored twice.

    GET  /api/ingest/access?project=P          may this token log runs of P?
    POST /api/ingest/runs                      create a run (client-chosen id)
    GET  /api/ingest/state?run=REF             what resuming a run needs
    POST /api/ingest/runs/{id}/reopen          resume it
    POST /api/ingest/runs/{id}/environment     git, packages, hardware
    POST /api/ingest/runs/{id}/seed
    POST /api/ingest/runs/{id}/config          the run's whole config, after update_config()
    POST /api/ingest/metrics                   chunks, summaries, heartbeats (one transaction)
    GET  /api/ingest/runs/{id}/summary
    GET  /api/ingest/blobs/{sha256}            is this blob stored already?
    PUT  /api/ingest/blobs/{sha256}            upload a blob (its sha256 is checked)
    POST /api/ingest/runs/{id}/artifacts       record a stored blob as an artifact
    POST /api/ingest/runs/{id}/audio           record a stored FLAC blob as an audio sample
    POST /api/ingest/runs/{id}/media           record a stored PNG or JSON blob as an image
                                               or a table
    POST /api/ingest/runs/{id}/finish          finished or failed (merges metric chunks)

Wire formats are in ``tympan.track.wire``; shapes in docs/remote-logging.md.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import AfterValidator, BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from tympan.errors import ImageError, InvalidInputError, RunNotFoundError, RunStateError
from tympan.server.auth import Principal
from tympan.server.routes._read import StoreDep, Writer
from tympan.store import Store
from tympan.track import image, table, wire
from tympan.track.local import LocalTransport
from tympan.track.run import artifact_path
from tympan.track.transport import AudioClip, Blob, MediaItem, MetricBatch, NewRun, RunMetrics
from tympan.track.validate import KEY_PATTERN, check_name, check_text, to_config

router = APIRouter(prefix="/api/ingest", tags=["ingest"])


# NUL cannot be stored (PostgreSQL refuses it): every text field says so, as tympan.init does.
_NO_NUL = AfterValidator(lambda value: check_text(value, "text"))
_INT32 = 2**31 - 1
RUN_ID = r"^[0-9a-z]{1,32}$"
SHA256 = r"^[0-9a-f]{64}$"
RunId = Annotated[str, Field(pattern=RUN_ID)]
RunPath = Annotated[str, Path(pattern=RUN_ID, description="the run's id")]
ShaPath = Annotated[str, Path(pattern=SHA256, description="the blob's sha256 (hex)")]
Sha = Annotated[str, Field(pattern=SHA256)]
Key = Annotated[str, Field(pattern=f"^{KEY_PATTERN.pattern}$")]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(
    lambda value: check_name(value, "name"))]
Text = Annotated[str, Field(max_length=1_000_000), _NO_NUL]
Int32 = Annotated[int, Field(ge=-_INT32 - 1, le=_INT32)]
Count = Annotated[int, Field(ge=0, le=_INT32)]
Step = Annotated[int, Field(ge=0, lt=2**62)]
Size = Annotated[int, Field(ge=0, lt=2**63)]
# Seconds since the epoch; below 2**53 ms, so every time also fits MLflow's integer
# milliseconds (a time near the float maximum became infinity there: a 500 on every read).
Time = Annotated[float, Field(allow_inf_nan=False, ge=0, lt=2**53 / 1000)]
Number = float | Literal["nan", "inf", "-inf"] | None


def _runs(store: Store, principal: Principal, run_ids: list[str]) -> LocalTransport:
    """The transport, once every run named exists and is of a project the token may write."""
    transport = LocalTransport(store)
    for run_id, project in transport.project_of(run_ids).items():
        # One message for "another project's" and "no such run", and no server path in it.
        message = f"no run {run_id!r} in this store"
        if project is None:
            raise RunNotFoundError(message)
        principal.check_project(project, message)
    return transport


class Done(BaseModel):
    ok: bool = True


# -- runs -----------------------------------------------------------------------------------
class Access(BaseModel):
    project: str
    scope: str


@router.get("/access")
def check_access(principal: Writer,
                 project: Annotated[str, Query(min_length=1, max_length=200)]) -> Access:
    """Whether this token may log runs of ``project`` (401/403/404 when it may not)."""
    principal.check_project(project, f"this token cannot log runs of project {project!r}")
    return Access(project=project, scope=principal.scope)


class NewRunIn(BaseModel):
    id: RunId
    project: Name
    name: Name
    config: dict[str, Any] = {}
    tags: list[Annotated[str, Field(min_length=1, max_length=100), AfterValidator(
        lambda value: check_name(value, "tag", limit=100))]] = []
    note: Text = ""
    parent: Name | None = None
    study: Annotated[str, Field(min_length=1, max_length=64), _NO_NUL] | None = None
    host: Annotated[str, Field(max_length=255), _NO_NUL] | None = None
    pid: Int32 | None = None
    seed: Int32 | None = None
    created_at: Time


@router.post("/runs")
def create_run(body: NewRunIn, principal: Writer, store: StoreDep) -> Done:
    """Create a run; the same request again (same id, same project) changes nothing."""
    principal.check_project(body.project,
                            f"this token cannot log runs of project {body.project!r}")
    fields = body.model_dump()
    fields["config"] = to_config(body.config)  # JSON without NaN/Infinity, as a client sends
    LocalTransport(store, principal.project).create_run(NewRun(**fields))
    return Done()


class Summary(BaseModel):
    last: Number = None
    last_step: Step | None = None
    min: Number = None
    min_step: Step | None = None
    max: Number = None
    max_step: Step | None = None
    count: Count = 0
    nan_count: Count = 0
    inf_count: Count = 0


class RunStateOut(BaseModel):
    id: str
    name: str
    project: str
    status: str
    host: str | None
    pid: int | None
    started_at: float
    heartbeat_at: float | None
    config: dict[str, Any]
    tags: list[str]
    summary: dict[str, Summary]
    next_seq: dict[str, int]
    last_step: int | None


@router.get("/state")
def run_state(principal: Writer, store: StoreDep,
              run: Annotated[str, Query(min_length=1, max_length=200,
                                        description="a run id, id prefix or unique name"),
                         _NO_NUL],
              ) -> RunStateOut:
    """What a client resuming the run needs: its record, summaries and next chunk numbers."""
    state = LocalTransport(store, principal.project).run_state(run)
    principal.check_project(state.project, f"no run {run!r} in this store")  # (scoped above)
    out = {**state.__dict__, "summary": {k: wire.summary(s) for k, s in state.summary.items()}}
    return RunStateOut(**out)


class ReopenIn(BaseModel):
    host: Annotated[str, Field(max_length=255), _NO_NUL]
    pid: Int32
    now: Time


@router.post("/runs/{run_id}/reopen")
def reopen_run(run_id: RunPath, body: ReopenIn, principal: Writer, store: StoreDep) -> Done:
    _runs(store, principal, [run_id]).reopen_run(run_id, body.host, body.pid, body.now)
    return Done()


class EnvironmentIn(BaseModel):
    digest: Annotated[str, Field(min_length=1, max_length=64), _NO_NUL]
    data: dict[str, Any]
    now: Time


@router.post("/runs/{run_id}/environment")
def set_environment(run_id: RunPath, body: EnvironmentIn, principal: Writer,
                    store: StoreDep) -> Done:
    _runs(store, principal, [run_id]).set_environment(run_id, body.digest,
                                                      to_config(body.data), body.now)
    return Done()


class SeedIn(BaseModel):
    seed: Int32


@router.post("/runs/{run_id}/seed")
def set_seed(run_id: RunPath, body: SeedIn, principal: Writer, store: StoreDep) -> Done:
    _runs(store, principal, [run_id]).set_seed(run_id, body.seed)
    return Done()


class ConfigIn(BaseModel):
    config: dict[str, Any]


@router.post("/runs/{run_id}/config")
def set_config(run_id: RunPath, body: ConfigIn, principal: Writer, store: StoreDep) -> Done:
    """Replace the run's config (``run.update_config`` sends the merged whole)."""
    _runs(store, principal, [run_id]).set_config(run_id, to_config(body.config))
    return Done()


class FinishIn(BaseModel):
    status: Literal["finished", "failed"]
    ended_at: Time
    error: Text | None = None


@router.post("/runs/{run_id}/finish")
def finish_run(run_id: RunPath, body: FinishIn, principal: Writer, store: StoreDep) -> Done:
    """End the run (again: no change) and merge its metric chunks."""
    _runs(store, principal, [run_id]).finish_run(run_id, body.status, body.ended_at,
                                                 body.error)
    return Done()


# -- metrics --------------------------------------------------------------------------------
class ChunkIn(BaseModel):
    key: Key
    seq: Count
    steps: str = Field(description="base64 of little-endian int64 steps")
    values: str = Field(description="base64 of little-endian float64 values")
    times: str = Field(description="base64 of little-endian float64 wall times (s)")


class RunMetricsIn(BaseModel):
    run_id: RunId
    chunks: list[ChunkIn] = []
    summaries: dict[Key, Summary] = {}


class MetricsIn(BaseModel):
    now: Time
    live: list[RunId] = Field(default=[], description="runs whose heartbeat this is")
    runs: list[RunMetricsIn] = []


class MetricsOut(BaseModel):
    points: int


@router.post("/metrics")
def write_metrics(body: MetricsIn, principal: Writer, store: StoreDep) -> MetricsOut:
    """Store metric chunks, summaries and heartbeats in one transaction. A chunk already
    stored under its (run, key, seq) is skipped, so a retried request stores nothing twice."""
    transport = _runs(store, principal, [r.run_id for r in body.runs] + body.live)
    batch = []
    for run in body.runs:
        chunks = [wire.unchunk(run.run_id, c.key, c.seq, c.steps, c.values, c.times)
                  for c in run.chunks]
        if chunks and transport.run_status(run.run_id) not in ("running", "crashed"):
            raise RunStateError(f"run {run.run_id} has ended: resume it to log more")
        summaries = {k: wire.unsummary(s.model_dump()) for k, s in run.summaries.items()}
        batch.append(RunMetrics(run.run_id, chunks, summaries))
    transport.write_metrics(MetricBatch(batch, body.live, body.now))
    return MetricsOut(points=sum(r.points for r in batch))


class SummaryOut(BaseModel):
    summary: dict[str, Summary]


@router.get("/runs/{run_id}/summary")
def run_summary(run_id: RunPath, principal: Writer, store: StoreDep) -> SummaryOut:
    """Per-key last/min/max/count of the run's metrics (non-finite numbers as strings)."""
    summary = _runs(store, principal, [run_id]).summary(run_id)
    return SummaryOut(summary={k: wire.summary(s) for k, s in summary.items()})


# -- blobs, artifacts, audio ----------------------------------------------------------------
class BlobOut(BaseModel):
    sha256: str
    exists: bool = True
    size: int | None = None


@router.get("/blobs/{sha256}")
def blob_exists(sha256: ShaPath, principal: Writer, store: StoreDep) -> BlobOut:
    return BlobOut(sha256=sha256, exists=store.blobs.exists(sha256))


@router.put("/blobs/{sha256}", openapi_extra={"requestBody": {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}})
async def put_blob(sha256: ShaPath, request: Request, principal: Writer,
                   store: StoreDep) -> BlobOut:
    """Upload a blob; the bytes must hash to ``sha256`` (else 400 and nothing is stored)."""
    blob = await receive_blob(request, store, sha256)
    return BlobOut(sha256=sha256, size=blob.size)


async def receive_blob(request: Request, store: Store, sha256: str | None = None) -> Blob:
    """Store a request's body as a blob, streamed through a staged file; when ``sha256`` is
    given the bytes must hash to it (else 400 and nothing is stored)."""
    digest = hashlib.sha256()
    size = 0
    fd, staged = tempfile.mkstemp(prefix="tympan-upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            async for part in request.stream():
                digest.update(part)
                out.write(part)
                size += len(part)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise InvalidInputError(
                f"the uploaded bytes ({size}) have sha256 {digest.hexdigest()}, not {sha256}: "
                "the upload was cut short or changed on the way; send it again"
            )
        if not await run_in_threadpool(store.blobs.exists, digest.hexdigest()):
            await run_in_threadpool(store.blobs.put_file, staged)
    finally:
        os.unlink(staged)
    return Blob(digest.hexdigest(), size)


def _stored(store: Store, sha256: str, size: int) -> Blob:
    if not store.blobs.exists(sha256):
        raise InvalidInputError(
            f"blob {sha256} is not on the server: PUT /api/ingest/blobs/{sha256} first"
        )
    return Blob(sha256, size)


class ArtifactIn(BaseModel):
    path: Annotated[str, Field(min_length=1, max_length=1000), _NO_NUL]
    sha256: Sha
    size: Size
    media_type: Annotated[str, Field(min_length=1, max_length=255), _NO_NUL]
    created_at: Time


@router.post("/runs/{run_id}/artifacts")
def record_artifact(run_id: RunPath, body: ArtifactIn, principal: Writer,
                    store: StoreDep) -> Done:
    """Record an uploaded blob as the run's artifact ``path`` (logging a path again
    replaces it)."""
    transport = _runs(store, principal, [run_id])
    path = artifact_path(body.path)
    transport.record_artifact(run_id, path, _stored(store, body.sha256, body.size),
                              body.media_type, body.created_at)
    return Done()


class AudioIn(BaseModel):
    key: Key
    step: Step
    sha256: Sha
    size: Size
    sample_rate: Annotated[int, Field(ge=1, le=655_350)]
    frames: Annotated[int, Field(ge=1, lt=2**62)]
    duration: Annotated[float, Field(allow_inf_nan=False, ge=0)]
    channels: Annotated[int, Field(ge=1, le=8)]
    caption: Text | None = None
    peak: Annotated[float, Field(allow_inf_nan=False, ge=0)]
    gain: Annotated[float, Field(allow_inf_nan=False, gt=0)]
    created_at: Time


@router.post("/runs/{run_id}/audio")
def record_audio(run_id: RunPath, body: AudioIn, principal: Writer, store: StoreDep) -> Done:
    """Record an uploaded FLAC blob as an audio sample of the run (sent again: no change)."""
    transport = _runs(store, principal, [run_id])
    clip = AudioClip(**body.model_dump(exclude={"sha256", "size"}))
    transport.record_audio(run_id, clip, _stored(store, body.sha256, body.size))
    return Done()



class ImageInfo(BaseModel):
    width: Annotated[int, Field(ge=1, lt=2**31)]
    height: Annotated[int, Field(ge=1, lt=2**31)]
    mode: Annotated[str, Field(min_length=1, max_length=8), _NO_NUL]
    scaled_from: Annotated[list[Annotated[float, Field(allow_inf_nan=False)]],
                           Field(min_length=2, max_length=2)] | None = None


class TableInfo(BaseModel):
    columns: list[Annotated[str, Field(min_length=1, max_length=200), _NO_NUL]]
    types: list[Literal["number", "string", "bool", "json", "empty"]]
    rows: Annotated[int, Field(ge=0, le=table.MAX_ROWS)]


class MediaIn(BaseModel):
    kind: Literal["image", "table"]
    key: Key
    step: Step
    sha256: Sha
    size: Size
    caption: Text | None = None
    info: ImageInfo | TableInfo = Field(description="an image's width, height and mode; a "
                                        "table's columns, their types and its number of rows")
    created_at: Time

    @model_validator(mode="after")
    def _info_fits_kind(self) -> MediaIn:
        wanted = ImageInfo if self.kind == "image" else TableInfo
        if not isinstance(self.info, wanted):
            raise ValueError(f"an {self.kind}'s info needs the fields "
                             f"{', '.join(wanted.model_fields)}")
        return self


@router.post("/runs/{run_id}/media")
def record_media(run_id: RunPath, body: MediaIn, principal: Writer, store: StoreDep) -> Done:
    """Record an uploaded PNG (an image) or JSON file (a table) under a key and step; its
    ``info`` must describe the file (sent again: no change)."""
    transport = _runs(store, principal, [run_id])
    blob = _stored(store, body.sha256, body.size)
    info = _media_info(store, body)
    item = MediaItem(body.kind, body.key, body.step, body.caption, info, body.created_at)
    transport.record_media(run_id, item, blob)
    return Done()


def _media_info(store: Store, body: MediaIn) -> dict[str, Any]:
    """``body.info`` checked against the stored file, so the record cannot misdescribe it."""
    data = store.blobs.read(body.sha256)
    info = body.info
    if isinstance(info, ImageInfo):
        try:
            width, height, _ = image.png_size(data)
        except ImageError as exc:
            raise InvalidInputError(f"image {body.key!r}: {exc}") from None
        if (width, height) != (info.width, info.height):
            raise InvalidInputError(f"image {body.key!r}: info says {info.width}x{info.height}, "
                                    f"the PNG is {width}x{height}")
        return info.model_dump(exclude_none=True)
    stored = table.decode(data, body.key)
    if (stored.columns, stored.types, len(stored.rows)) != (info.columns, info.types, info.rows):
        raise InvalidInputError(f"table {body.key!r}: info does not describe the uploaded file "
                                "(columns, types and number of rows must match it)")
    return info.model_dump()
