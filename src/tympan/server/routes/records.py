"""Read routes for clients that read runs back over HTTP (``tympan.records.remote``): whole
run records with their full summaries, full-fidelity metric histories, file rows and file
bytes. With them ``tympan runs/show/diff/export``, ``tympan.load_run`` and
``tympan.find_runs`` work against ``TYMPAN_STORE=http://host:port`` exactly as against the
store. Each route calls what ``LocalSource`` calls over a store; project-bound tokens see
their project only, and anything else answers 404 like something that does not exist.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from tympan.errors import NotFoundError
from tympan.records.query import RunQuery
from tympan.records.record import RECORD_FIELDS, RunRecord, resolve_run_id
from tympan.records.source import LocalSource
from tympan.records.table import find_runs
from tympan.server.routes._read import (
    ReadChecks,
    Reader,
    StoreDep,
    json_response,
    scoped_project,
    visible_run,
)
from tympan.server.routes.media import blob_chunks
from tympan.track import wire

router = APIRouter(prefix="/api/records", tags=["records"], dependencies=ReadChecks)

PAGE = 1000  # runs per answer of /api/records/runs; clients page with offset
FILE_KINDS = ("artifacts", "audio", "image", "table")


def record_json(record: RunRecord) -> dict[str, Any]:
    """A run record as the client rebuilds it (``HttpSource``): its stored fields, project,
    and summaries in the wire format (non-finite numbers as "nan", "inf", "-inf")."""
    fields = {name: getattr(record, name) for name in RECORD_FIELDS}
    return fields | {"project": record.project,
                     "summary": {k: wire.summary(s) for k, s in record.summary.items()}}


@router.get("/runs")
def records(request: Request, principal: Reader, store: StoreDep) -> Response:
    """The runs a query selects (the parameters of ``GET /api/runs``), as whole records; at
    most 1000 per answer, ``offset`` pages on."""
    query = RunQuery.from_params(request.query_params.multi_items())
    only = principal.projects_filter()
    query = replace(query, filter=replace(
        query.filter, project=scoped_project(principal, query.filter.project)),
        limit=min(query.limit or PAGE, PAGE))
    # A project-bound token's project may have no runs yet: an empty list, never the
    # names of other projects (which the unknown-project message lists).
    found = find_runs(store, query, check=only is None)
    return json_response({"runs": [record_json(r) for r in found], "limit": query.limit})


@router.get("/runs/resolve")
def resolve(principal: Reader, store: StoreDep, ref: str) -> Response:
    """The run an id, unique id prefix, unique name or ``models:/`` URI names, among the runs
    the token may see."""
    run_id = resolve_run_id(store, ref, project=principal.projects_filter())
    return json_response(record_json(visible_run(store, principal, run_id)))


@router.get("/runs/{run_id}")
def record(principal: Reader, store: StoreDep, run_id: str) -> Response:
    return json_response(record_json(visible_run(store, principal, run_id)))


@router.get("/runs/{run_id}/environment")
def environment(principal: Reader, store: StoreDep, run_id: str) -> Response:
    return json_response({"environment": visible_run(store, principal, run_id).environment()})


@router.get("/runs/{run_id}/metric-keys")
def metric_keys(principal: Reader, store: StoreDep, run_id: str) -> Response:
    return json_response({"keys": visible_run(store, principal, run_id).metric_keys()})


@router.get("/runs/{run_id}/history/{key:path}")
def history(principal: Reader, store: StoreDep, run_id: str, key: str) -> Response:
    """Every point of one metric, in logging order: base64 of little-endian int64 steps and
    float64 values and times (the ingest API's metric format)."""
    series = visible_run(store, principal, run_id).history(key)
    return json_response({"key": key, "steps": wire.array(series.steps, wire.STEP),
                          "values": wire.array(series.values, wire.F64),
                          "times": wire.array(series.times, wire.F64)}, safe=True)


@router.get("/runs/{run_id}/files/{kind}")
def files(principal: Reader, store: StoreDep, run_id: str, kind: str) -> Response:
    """The rows of the run's artifacts, audio samples, images or tables."""
    record = visible_run(store, principal, run_id)
    source = LocalSource(store)
    if kind == "artifacts":
        rows = source.artifacts(record.id)
    elif kind == "audio":
        rows = source.audio_samples(record.id)
    elif kind in ("image", "table"):
        rows = source.media(record.id, kind)
    else:
        raise NotFoundError(f"no kind of file {kind!r}: use one of {', '.join(FILE_KINDS)}")
    return json_response({"files": [dict(row._mapping) for row in rows]})


@router.get("/runs/{run_id}/blobs/{sha256}")
def blob(principal: Reader, store: StoreDep, run_id: str, sha256: str) -> Response:
    """The bytes of one of the run's files, named by its sha256 (streamed)."""
    from tympan.store import artifacts

    record = visible_run(store, principal, run_id)
    with store.read() as conn:
        size = artifacts.size_of_blob(conn, record.id, sha256)
    if size is None:
        raise NotFoundError(f"run {run_id} has no file with sha256 {sha256}")
    return StreamingResponse(blob_chunks(store, sha256), media_type="application/octet-stream",
                             headers={"Content-Length": str(size),
                                      "Content-Security-Policy": "sandbox"})

