"""The HTTP face of a served model (FastAPI): parse, call the service, render.

    POST /v1/predict   audio (WAV/FLAC/OGG) as the body, or multipart with the field 'audio'
    POST /v1/enroll/{name}  enroll clips as ``name`` (a recipe whose serving hook enrolls)
    GET  /v1/model     the version, its signature and card, the guard's settings
    GET  /healthz      the process answers;   GET /readyz   it takes requests (503 if not)
    GET  /metrics      Prometheus text format

Errors have the one JSON shape of ``tympan.server.errors``; bad audio is a 400, a clip over
``--max-audio-seconds`` or a body over ``--max-body-mb`` a 413, a request the guard rejects
a 422 that carries the verdict, a server shutting down a 503. Off loopback every route but
the health checks needs a store token (``Authorization: Bearer ...``, any scope).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from tympan.errors import AudioError
from tympan.serve.audio import AudioTooLongError, decode, decodes_quickly
from tympan.serve.batching import ServerClosingError
from tympan.serve.fleet import Fleet, ReplicaUnavailableError
from tympan.serve.service import Service
from tympan.server import errors
from tympan.server.errors import HTTPError, error_body

GUARD_HEADER = "X-Tympan-Guard"
REQUEST_ID_HEADER = "X-Request-Id"  # the client's, else one made here; routes a split
VERSION_HEADER = "X-Tympan-Version"  # with a split: the version that answered and its role

log = logging.getLogger("tympan.serve")


class Rendered(JSONResponse):
    """An answer rendered by orjson: json.dumps took about 20 us a guarded answer (a verdict's
    dozen floats), on every request; orjson takes 2 and renders the ``Verdict`` dataclass as
    it stands, its non-finite numbers as null, as ``Verdict.to_json`` writes them."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def create_app(service: Service | Fleet) -> FastAPI:
    """The routes over one served model (``Service``) or over replicas and a split
    (``Fleet``)."""
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()  # answers what was accepted, finishes the serving run

    app = FastAPI(title="tympan serve", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.service = service
    errors.install(app)
    app.add_exception_handler(AudioTooLongError, _too_long)
    app.add_exception_handler(ServerClosingError, _closing)
    app.add_exception_handler(ReplicaUnavailableError, _unavailable)
    allowed = [Depends(_token)] if service.config.auth else []

    @app.post("/v1/predict", dependencies=allowed)
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        with service.receiving():
            data = await _audio_bytes(request, service.config.max_body_bytes)
            wave = await _decode(service, data)
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        if len(request_id) > 200:
            raise HTTPError(400, f"the {REQUEST_ID_HEADER} header is longer than 200 characters")
        answer = await service.predict(wave, request_id)
        latency = time.perf_counter() - started
        # the metrics, drift windows and serving run after the response is sent, not before
        after = BackgroundTask(_observed, service, wave, answer, latency)
        version, role = service.answered_by(answer)
        metrics = service.metrics_of(answer)
        verdict = answer.verdict
        body: dict[str, Any] = {
            "model": version.model, "version": version.version,
            **({"role": role} if role else {}), "request_id": request_id,
            "answer": answer.answer, "guard": verdict,
            "audio_seconds": len(wave) / service.engine.sample_rate,
            "latency_ms": 1000 * (time.perf_counter() - started)}
        headers = {REQUEST_ID_HEADER: request_id}
        if verdict is not None:
            headers[GUARD_HEADER] = "flagged" if verdict.flagged else "pass"
            policy = service.config.guard.policy
            if verdict.flagged and policy == "reject":
                metrics.answered(422, time.perf_counter() - started)
                reason = (f"the guard rejected this input: anomaly p-value "
                          f"{verdict.p_value:.3g} <= {service.config.guard.threshold:g}, "
                          f"divergence entering at layer {verdict.entry_layer}")
                return Rendered(error_body("GuardRejectedError", reason) | {"guard": verdict},
                                status_code=422, headers=headers, background=after)
            if policy == "observe":
                headers.pop(GUARD_HEADER)
        if role:
            headers[VERSION_HEADER] = f"{version.version} ({role})"
        metrics.answered(200, time.perf_counter() - started)
        return Rendered(body, headers=headers, background=after)

    @app.post("/v1/enroll/{name}", dependencies=allowed)
    async def enroll(name: str, request: Request) -> dict[str, Any]:
        if not name.strip() or len(name) > 100:
            raise HTTPError(400, "a name to enroll must be 1 to 100 characters")
        files = await _audio_files(request, service.config.max_body_bytes)
        return await service.enroll(name, [await _decode(service, data) for data in files])

    @app.get("/v1/model", dependencies=allowed)
    def model() -> dict[str, Any]:
        return service.engine.describe() | {"card": service.card,
                                            "serving": service.settings(),
                                            "serving_run": service.recorder.id
                                            if service.recorder else None}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        if service.ready:
            return JSONResponse({"ready": True})
        reason = "shutting down" if service.closing else "the batch worker stopped"
        return JSONResponse(error_body("NotReadyError", reason), status_code=503)

    @app.get("/metrics", dependencies=allowed)
    def metrics() -> Response:
        data, content_type = service.metrics.render()
        return Response(data, media_type=content_type)

    return app


async def _observed(service: Service | Fleet, wave: np.ndarray, answer: Any,
                    latency: float) -> None:
    """``service.observe`` on the event loop once the answer is on its way (async: Starlette
    would send a plain function to a worker thread). The client has its answer by then, so
    a failure is logged, with the request's audio seconds, rather than raised."""
    try:
        service.observe(wave, answer, latency)
    except Exception:
        log.exception("recording an answered request (%.2f s of audio) failed: its metrics, "
                      "drift window or serving-run sample are missing",
                      len(wave) / service.engine.sample_rate)


async def _decode(service: Service | Fleet, data: bytes) -> np.ndarray:
    """A request's samples: a small WAV at the model's rate on the event loop, anything else
    (codecs, resampling) in a worker thread so the loop keeps answering."""
    rate, longest = service.engine.sample_rate, service.config.max_audio_seconds
    if decodes_quickly(data, rate):
        return decode(data, rate, longest)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(decode, data, rate, longest)


async def _audio_bytes(request: Request, limit: int) -> bytes:
    """The request's audio file: the body, or the multipart field 'audio' (the first)."""
    return (await _audio_files(request, limit))[0]


async def _audio_files(request: Request, limit: int) -> list[bytes]:
    """The request's audio files: the body, or every multipart field 'audio'."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"the request body is larger than this server's limit of {limit}"
                             " bytes (--max-body-mb)")
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        uploads = form.getlist("audio")
        if not uploads or any(isinstance(u, str) for u in uploads):
            raise AudioError("a multipart request must carry the audio file in the field "
                             "'audio'")
        files = [await upload.read() for upload in uploads]
        if sum(len(data) for data in files) > limit:
            raise HTTPError(413, f"the audio files are larger than this server's limit of "
                                 f"{limit} bytes (--max-body-mb)")
        return files
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the request body is larger than this server's limit of "
                                 f"{limit} bytes (--max-body-mb)")
        chunks.append(chunk)
    return [b"".join(chunks)]


def _token(request: Request) -> None:
    """Off loopback: a store token (``tympan token create``), any scope."""
    from tympan.store import tokens
    from tympan.track.stores import shared_store

    header = request.headers.get("authorization", "")
    kind, _, text = header.partition(" ")
    if kind.lower() != "bearer" or not text.strip():
        raise HTTPError(401, "this server requires a token: send 'Authorization: Bearer "
                             "<token>' (tympan token create)",
                        headers={"WWW-Authenticate": "Bearer"})
    store = shared_store(request.app.state.service.config.store)
    with store.read() as conn:
        token = tokens.verify(conn, text.strip())
    if token is None or token.revoked:
        raise HTTPError(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})


async def _too_long(_request: Request, exc: Exception) -> JSONResponse:
    return errors.error_response(413, "AudioTooLongError", str(exc))


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return errors.error_response(503, "ReplicaUnavailableError", str(exc))


async def _closing(_request: Request, exc: Exception) -> JSONResponse:
    return errors.error_response(503, "ServerClosingError", str(exc))
