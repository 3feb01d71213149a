"""An MLflow-compatible tracking API, so code written for MLflow logs into tympan unchanged:

    MLFLOW_TRACKING_URI=http://tympan-server:8787 MLFLOW_TRACKING_TOKEN=TOKEN python train.py

    POST /api/2.0/mlflow/experiments/create         GET /api/2.0/mlflow/experiments/get
    GET  /api/2.0/mlflow/experiments/get-by-name    POST /api/2.0/mlflow/experiments/search
    POST /api/2.0/mlflow/runs/create                POST /api/2.0/mlflow/runs/update
    GET  /api/2.0/mlflow/runs/get                   POST /api/2.0/mlflow/runs/search
    POST /api/2.0/mlflow/runs/log-metric            POST /api/2.0/mlflow/runs/log-batch
    POST /api/2.0/mlflow/runs/log-parameter         POST /api/2.0/mlflow/runs/set-tag
    POST /api/2.0/mlflow/runs/delete-tag            GET  /api/2.0/mlflow/metrics/get-history
    POST /api/2.0/mlflow/runs/delete                POST /api/2.0/mlflow/runs/restore
    POST /api/2.0/mlflow/logged-models/search       (none: tympan's registry keeps models)
    PUT|GET /api/2.0/mlflow-artifacts/artifacts/{run_id}/{path}   (mlflow.log_artifact)
    GET  /api/2.0/mlflow-artifacts/artifacts?path=RUN_ID/FOLDER    (list)

The client sends its token (MLFLOW_TRACKING_TOKEN) as a Bearer token: reads need scope
read, writes scope write, and a token bound to a project sees only that project's runs and
experiment. How MLflow's records map onto tympan's is ``tympan.integrations.mlflow_tracking``
(a deleted run is an archived one: MLflow's delete is soft, as tympan's archive is).
Errors come in MLflow's shape (``error_code``, ``message``), which its client turns into
``MlflowException``, together with tympan's ``error`` object.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from tympan.errors import InvalidInputError, NotFoundError, TympanError
from tympan.integrations.mlflow_tracking import ExistsError, MetricPoint, MlflowTracking
from tympan.server import errors
from tympan.server.auth import Principal
from tympan.server.routes._read import Reader, StoreDep, Writer
from tympan.server.routes.ingest import RUN_ID, receive_blob
from tympan.server.routes.manage import actor
from tympan.store import Store

_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "RESOURCE_DOES_NOT_EXIST", 409: "INVALID_STATE", 413: "INVALID_PARAMETER_VALUE",
          422: "INVALID_PARAMETER_VALUE", 501: "NOT_IMPLEMENTED",
          503: "TEMPORARILY_UNAVAILABLE"}


def _mlflow_error(status: int, type_: str, message: str, code: str | None = None,
                  headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error_code": code or _CODES.get(status, "INTERNAL_ERROR"), "message": message,
            **errors.error_body(type_, message)}
    return JSONResponse(body, status_code=status, headers=headers)


class MlflowRoute(APIRoute):
    """Answers errors in MLflow's shape (with tympan's ``error`` object alongside)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                message = errors._validation_message(exc)
                return _mlflow_error(400, "ValidationError", message)
            except HTTPException as exc:
                type_ = getattr(exc, "type", None) or "HTTPError"
                return _mlflow_error(exc.status_code, type_, str(exc.detail),
                                     headers=getattr(exc, "headers", None))
            except TympanError as exc:
                code = "RESOURCE_ALREADY_EXISTS" if isinstance(exc, ExistsError) else None
                return _mlflow_error(errors.status_of(exc), type(exc).__name__, str(exc), code)

        return answer


router = APIRouter(prefix="/api/2.0", tags=["mlflow"], route_class=MlflowRoute)
Short = Annotated[str, Field(max_length=1000)]
Long = Annotated[str, Field(max_length=8000)]
Limit = Annotated[int, Field(ge=1, le=50_000)]
Millis = Annotated[int, Field(ge=0, lt=2**53)]
RunPath = Annotated[str, Path(pattern=RUN_ID, description="the run's id")]


def _tracking(store: Store, principal: Principal) -> MlflowTracking:
    return MlflowTracking(store, principal.project)


def _offset(token: str | None) -> int:
    if not token:
        return 0
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses (it was a 500).
    if not (token.isascii() and token.isdigit()):
        raise InvalidInputError(f"page_token {token[:40]!r} is not one this server gave out "
                                "(they are the next_page_token of an earlier answer)")
    return int(token)


def _token(offset: int | None) -> dict[str, str]:
    return {} if offset is None else {"next_page_token": str(offset)}


# -- experiments ----------------------------------------------------------------------------
class ExperimentIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]


@router.post("/mlflow/experiments/create")
def create_experiment(body: ExperimentIn, principal: Writer, store: StoreDep) -> dict:
    """Create an experiment: a tympan project."""
    return {"experiment_id": _tracking(store, principal).create_experiment(body.name)}


@router.get("/mlflow/experiments/get")
def get_experiment(principal: Reader, store: StoreDep,
                   experiment_id: Annotated[str, Query(max_length=20)]) -> dict:
    return {"experiment": _tracking(store, principal).experiment(experiment_id)}


@router.get("/mlflow/experiments/get-by-name")
def get_experiment_by_name(principal: Reader, store: StoreDep,
                           experiment_name: Annotated[str, Query(max_length=200)]) -> dict:
    return {"experiment": _tracking(store, principal).experiment_by_name(experiment_name)}


class SearchExperimentsIn(BaseModel):
    max_results: Limit = 1000
    page_token: Short | None = None
    filter: Short | None = None
    order_by: list[Short] = []


@router.post("/mlflow/experiments/search")
def search_experiments(body: SearchExperimentsIn, principal: Reader, store: StoreDep) -> dict:
    """Every experiment (project) this token may see, by id; filters are not evaluated."""
    if body.filter or body.order_by:
        raise InvalidInputError("tympan's MLflow endpoint does not evaluate experiment "
                                "filters or orderings; search without them (experiments "
                                "come by id)")
    found, more = _tracking(store, principal).search_experiments(body.max_results,
                                                                 _offset(body.page_token))
    return {"experiments": found, **_token(more)}


# -- runs -----------------------------------------------------------------------------------
class TagIn(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=250)]
    value: Long = ""


class CreateRunIn(BaseModel):
    experiment_id: Annotated[str, Field(max_length=20)] = "0"
    run_name: Annotated[str, Field(max_length=200)] | None = None
    start_time: Millis | None = None
    tags: list[TagIn] = []


@router.post("/mlflow/runs/create")
def create_run(body: CreateRunIn, principal: Writer, store: StoreDep) -> dict:
    tags = {t.key: t.value for t in body.tags}
    return {"run": _tracking(store, principal).create_run(body.experiment_id, body.run_name,
                                                          body.start_time, tags)}


class UpdateRunIn(BaseModel):
    run_id: Annotated[str, Field(max_length=32)] | None = None
    run_uuid: Annotated[str, Field(max_length=32)] | None = None
    status: Annotated[str, Field(max_length=20)] | None = None
    end_time: Millis | None = None
    run_name: Annotated[str, Field(max_length=200)] | None = None


@router.post("/mlflow/runs/update")
def update_run(body: UpdateRunIn, principal: Writer, store: StoreDep) -> dict:
    """End a run (FINISHED, FAILED, KILLED), reopen it (RUNNING) or rename it."""
    run_id = body.run_id or body.run_uuid or ""
    info = _tracking(store, principal).update_run(run_id, body.status, body.end_time,
                                                  body.run_name)
    return {"run_info": info}


@router.get("/mlflow/runs/get")
def get_run(principal: Reader, store: StoreDep,
            run_id: Annotated[str, Query(max_length=32)] = "",
            run_uuid: Annotated[str, Query(max_length=32)] = "") -> dict:
    return {"run": _tracking(store, principal).run(run_id or run_uuid)}


# MLflow's ViewType, by name (its client) or number (protobuf JSON allows both), as archived=.
VIEW_TYPES = {"ACTIVE_ONLY": "hide", "DELETED_ONLY": "only", "ALL": "include",
              1: "hide", 2: "only", 3: "include"}


class SearchRunsIn(BaseModel):
    experiment_ids: list[Annotated[str, Field(max_length=20)]] = []
    filter: Short = ""
    order_by: list[Short] = []
    max_results: Limit = 1000
    page_token: Short | None = None
    run_view_type: Literal["ACTIVE_ONLY", "DELETED_ONLY", "ALL", 1, 2, 3] = "ACTIVE_ONLY"


class RunIdIn(BaseModel):
    run_id: Annotated[str, Field(min_length=1, max_length=32)]


@router.post("/mlflow/runs/search")
def search_runs(body: SearchRunsIn, principal: Reader, store: StoreDep) -> dict:
    """The experiments' runs, newest first (filter strings and orderings are refused, not
    ignored)."""
    if body.order_by:
        raise InvalidInputError("tympan's MLflow endpoint does not evaluate order_by; runs "
                                "come newest first (sort with tympan runs --sort)")
    found, more = _tracking(store, principal).search_runs(
        body.experiment_ids, body.max_results, _offset(body.page_token), body.filter,
        archived=VIEW_TYPES[body.run_view_type])
    return {"runs": found, **_token(more)}


@router.post("/mlflow/runs/delete")
def delete_run(body: RunIdIn, principal: Writer, store: StoreDep) -> dict:
    """MLflow's soft delete: the run is archived (hidden from searches, restorable)."""
    _tracking(store, principal).delete_run(body.run_id, actor(principal))
    return {}


@router.post("/mlflow/runs/restore")
def restore_run(body: RunIdIn, principal: Writer, store: StoreDep) -> dict:
    """Undo a delete: the run is unarchived."""
    _tracking(store, principal).delete_run(body.run_id, actor(principal), deleted=False)
    return {}


# -- logging --------------------------------------------------------------------------------
class MetricIn(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=250)]
    value: float
    timestamp: Millis
    step: Annotated[int, Field(ge=0, lt=2**62)] = 0


class LogMetricIn(MetricIn):
    run_id: Annotated[str, Field(max_length=32)] = ""
    run_uuid: Annotated[str, Field(max_length=32)] = ""


class ParamIn(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=250)]
    value: Long


class LogBatchIn(BaseModel):
    run_id: Annotated[str, Field(max_length=32)]
    metrics: Annotated[list[MetricIn], Field(max_length=10_000)] = []
    params: Annotated[list[ParamIn], Field(max_length=1_000)] = []
    tags: Annotated[list[TagIn], Field(max_length=1_000)] = []


class RunKeyIn(BaseModel):
    run_id: Annotated[str, Field(max_length=32)] = ""
    run_uuid: Annotated[str, Field(max_length=32)] = ""
    key: Annotated[str, Field(min_length=1, max_length=250)]
    value: Long = ""


def _points(metrics: list[MetricIn]) -> list[MetricPoint]:
    return [MetricPoint(m.key, m.value, m.timestamp, m.step) for m in metrics]


@router.post("/mlflow/runs/log-metric")
def log_metric(body: LogMetricIn, principal: Writer, store: StoreDep) -> dict:
    _tracking(store, principal).log_batch(body.run_id or body.run_uuid, _points([body]), {},
                                          {})
    return {}


@router.post("/mlflow/runs/log-batch")
def log_batch(body: LogBatchIn, principal: Writer, store: StoreDep) -> dict:
    """Metrics, params and tags of one run in one request."""
    _tracking(store, principal).log_batch(
        body.run_id, _points(body.metrics), {p.key: p.value for p in body.params},
        {t.key: t.value for t in body.tags})
    return {}


@router.post("/mlflow/runs/log-parameter")
def log_parameter(body: RunKeyIn, principal: Writer, store: StoreDep) -> dict:
    _tracking(store, principal).log_batch(body.run_id or body.run_uuid, [],
                                          {body.key: body.value}, {})
    return {}


@router.post("/mlflow/runs/set-tag")
def set_tag(body: RunKeyIn, principal: Writer, store: StoreDep) -> dict:
    _tracking(store, principal).log_batch(body.run_id or body.run_uuid, [], {},
                                          {body.key: body.value})
    return {}


@router.post("/mlflow/runs/delete-tag")
def delete_tag(body: RunKeyIn, principal: Writer, store: StoreDep) -> dict:
    _tracking(store, principal).delete_tag(body.run_id or body.run_uuid, body.key)
    return {}


@router.get("/mlflow/metrics/get-history")
def metric_history(principal: Reader, store: StoreDep,
                   metric_key: Annotated[str, Query(min_length=1, max_length=250)],
                   run_id: Annotated[str, Query(max_length=32)] = "",
                   run_uuid: Annotated[str, Query(max_length=32)] = "") -> dict:
    """Every point of one metric, in logging order."""
    return {"metrics": _tracking(store, principal).metric_history(run_id or run_uuid,
                                                                  metric_key)}


class SearchModelsIn(BaseModel):
    experiment_ids: list[Annotated[str, Field(max_length=20)]] = []


@router.post("/mlflow/logged-models/search")
def search_logged_models(body: SearchModelsIn, principal: Reader, store: StoreDep) -> dict:
    """None: runs logged here have no MLflow logged models (tympan's registry keeps models;
    MLflow 3's client asks for them whenever it lists a run's artifacts)."""
    for experiment_id in body.experiment_ids:
        _tracking(store, principal).experiment(experiment_id)  # 404 for an unknown one
    return {"models": []}


# -- artifacts ------------------------------------------------------------------------------
@router.put("/mlflow-artifacts/artifacts/{run_id}/{path:path}", openapi_extra={"requestBody": {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}})
async def put_artifact(run_id: RunPath, path: str, request: Request, principal: Writer,
                       store: StoreDep) -> dict:
    """Upload a file as the run's artifact ``path`` (``mlflow.log_artifact``)."""
    tracking = _tracking(store, principal)
    await run_in_threadpool(tracking.run, run_id)  # 404 before reading the body
    blob = await receive_blob(request, store)
    media_type = request.headers.get("content-type") or "application/octet-stream"
    await run_in_threadpool(tracking.put_artifact, run_id, path, blob, media_type[:255])
    return {}


@router.get("/mlflow-artifacts/artifacts/{run_id}/{path:path}")
def get_artifact(run_id: RunPath, path: str, principal: Reader, store: StoreDep) -> Response:
    data, media_type = _tracking(store, principal).artifact(run_id, path)
    return Response(data, media_type=media_type)


@router.get("/mlflow-artifacts/artifacts")
def list_artifacts(principal: Reader, store: StoreDep,
                   path: Annotated[str, Query(max_length=1000)] = "") -> dict:
    """The files and folders directly under ``path`` (``RUN_ID/FOLDER``)."""
    run_id, _, folder = path.strip("/").partition("/")
    if not run_id:
        raise NotFoundError("list the artifacts of one run: path=RUN_ID[/FOLDER]")
    return {"files": _tracking(store, principal).list_artifacts(run_id, folder)}
