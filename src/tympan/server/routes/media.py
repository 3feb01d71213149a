"""Read routes for a run's files: artifacts, and audio samples as WAV, log-mel spectrogram
PNG and waveform peaks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response, StreamingResponse

from tympan.errors import InvalidInputError, NotFoundError
from tympan.records.record import RunRecord
from tympan.server import spectrogram
from tympan.server.errors import HTTPError
from tympan.server.routes._read import ReadChecks, Reader, StoreDep, json_response, visible_run
from tympan.server.views.run_page import artifact_fields, keys_and_steps
from tympan.store import Store, artifacts, samples

router = APIRouter(prefix="/api", tags=["artifacts and audio"], dependencies=ReadChecks)

INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "audio/", "video/",
                "application/json", "text/plain", "text/csv", "application/pdf")
_CHUNK = 1 << 20
SampleId = Annotated[int, Path(ge=0, le=2**62)]


@router.get("/runs/{run_id}/artifacts")
def list_artifacts(principal: Reader, store: StoreDep, run_id: str) -> Response:
    record = visible_run(store, principal, run_id)
    return json_response({"artifacts": [artifact_fields(a) for a in record.artifacts()]})


@router.get("/runs/{run_id}/artifacts/{path:path}")
def get_artifact(principal: Reader, store: StoreDep, run_id: str, path: str) -> Response:
    """The artifact's bytes, with its media type; never rendered as a page of this origin."""
    check_artifact_path(path)
    record = visible_run(store, principal, run_id)
    with store.read() as conn:
        row = artifacts.get(conn, record.id, path)
    if row is None:
        raise NotFoundError(f"run {run_id} has no artifact {path!r}")
    media_type = row.media_type or "application/octet-stream"
    inline = any(media_type.startswith(t) for t in INLINE_TYPES)
    filename = path.rsplit("/", 1)[-1].replace('"', "")
    headers = {
        "Content-Security-Policy": "sandbox",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'{"inline" if inline else "attachment"}; '
                               f'filename="{_ascii(filename)}"',
        "Content-Length": str(row.size),
    }
    return StreamingResponse(blob_chunks(store, row.sha256), media_type=media_type,
                             headers=headers)


def check_artifact_path(path: str) -> None:
    """Refuse paths that try to leave the run's artifacts (``..``, absolute, backslashes)."""
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or "\x00" in path
            or any(p in ("..", ".") for p in parts)):
        raise InvalidInputError(f"artifact path {path!r} is not allowed: give the path the "
                                "artifact was logged under, like model/weights.pt")


def blob_chunks(store: Store, sha256: str) -> Iterator[bytes]:
    with store.blobs.open(sha256) as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("?", "_")


@router.get("/runs/{run_id}/audio")
def list_audio(principal: Reader, store: StoreDep, run_id: str, key: str | None = None,
               step: Annotated[int | None, Query(ge=0, le=2**62)] = None) -> Response:
    """The run's audio samples (optionally of one key and/or step) and every key's steps."""
    record = visible_run(store, principal, run_id)
    rows = record.audio_samples()
    chosen = [s for s in rows if (key is None or s.key == key)
              and (step is None or s.step == step)]
    return json_response({
        "samples": [{"sample_id": s.id, "key": s.key, "step": s.step,
                     "sample_rate": s.sample_rate, "duration": s.duration, "frames": s.frames,
                     "channels": s.channels, "caption": s.caption, "peak": s.peak}
                    for s in chosen],
        "keys": keys_and_steps(rows),
    })


def _clip(store: Store, record: RunRecord, sample_id: int) -> tuple[str, spectrogram.Clip]:
    with store.read() as conn:
        row = samples.get(conn, record.id, sample_id)
    if row is None:
        raise NotFoundError(f"run {record.id} has no audio sample {sample_id}")
    return row.sha256, spectrogram.decode(store.blobs.read(row.sha256), row.gain)


@router.get("/runs/{run_id}/audio/{sample_id}.wav")
def audio_wav(principal: Reader, store: StoreDep, run_id: str, sample_id: SampleId,
              range_header: Annotated[str | None, Header(alias="range")] = None) -> Response:
    """The sample as WAV, exactly as logged; a ``Range: bytes=...`` request gets that part
    (206), so a player can seek."""
    record = visible_run(store, principal, run_id)
    _, clip = _clip(store, record, sample_id)
    return byte_range_response(spectrogram.wav_bytes(clip), "audio/wav", range_header,
                               {"Cache-Control": "private, max-age=3600"})


def byte_range_response(data: bytes, media_type: str, range_header: str | None,
                        headers: dict[str, str]) -> Response:
    """``data`` whole (200), or the one byte range asked for (206), or 416 when the range
    cannot be satisfied. Multi-range requests get the whole body, as RFC 9110 allows."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    size = len(data)
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
    if match is None or match.groups() == ("", ""):
        return Response(data, media_type=media_type, headers=headers)
    first, last = match.groups()
    if first == "":  # the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise HTTPError(416, f"range {range_header} is outside the {size} bytes of this file",
                        headers={"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start:end + 1], status_code=206, media_type=media_type,
                    headers=headers)


@router.get("/runs/{run_id}/audio/{sample_id}/spectrogram.png")
def audio_spectrogram(principal: Reader, store: StoreDep, run_id: str, sample_id: SampleId
                      ) -> Response:
    """The sample's log-mel spectrogram (80 mel bands, 10 ms columns) as PNG."""
    record = visible_run(store, principal, run_id)
    sha, clip = _clip(store, record, sample_id)
    return Response(spectrogram.spectrogram_png(sha, clip), media_type="image/png", headers={
        "Cache-Control": "private, max-age=3600",
        "X-Tympan-Hop-Seconds": str(spectrogram.HOP_SECONDS),
        "X-Tympan-Mel-Bands": str(spectrogram.MEL_BANDS),
        "X-Tympan-Fmax": str(clip.sample_rate / 2),
    })


@router.get("/spectrogram/scale")
def spectrogram_scale(principal: Reader) -> Response:
    """The spectrograms' colour map and the dB each end stands for (the page's colour bar)."""
    return json_response(spectrogram.colour_scale())


@router.get("/runs/{run_id}/audio/{sample_id}/waveform.json")
def audio_waveform(principal: Reader, store: StoreDep, run_id: str, sample_id: SampleId,
                   points: Annotated[int, Query(ge=16, le=8000)] = 1000) -> Response:
    """The sample's waveform as min/max peaks per bucket, for drawing."""
    record = visible_run(store, principal, run_id)
    _, clip = _clip(store, record, sample_id)
    return json_response(spectrogram.waveform_peaks(clip, points))
