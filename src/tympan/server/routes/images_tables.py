"""Read routes for the images and tables a run logged (``run.log_image``, ``run.log_table``):
lists by key and step, an image's PNG, a table's columns and rows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from tympan.errors import NotFoundError
from tympan.records.record import RunRecord
from tympan.server.routes._read import ReadChecks, Reader, StoreDep, json_response, visible_run
from tympan.server.views.run_page import keys_and_steps
from tympan.store import Store, media
from tympan.track.table import decode

router = APIRouter(prefix="/api", tags=["images and tables"], dependencies=ReadChecks)

ItemId = Annotated[int, Path(ge=0, le=2**62)]
StepQuery = Annotated[int | None, Query(ge=0, le=2**62)]


def _listing(kind: str, rows: list[Any], key: str | None, step: int | None) -> Response:
    """The items of one kind (of ``key`` and/or ``step``) with their info, and every key's
    steps."""
    chosen = [r for r in rows if (key is None or r.key == key) and (step is None or r.step == step)]
    return json_response({
        f"{kind}s": [{f"{kind}_id": r.id, "key": r.key, "step": r.step, "caption": r.caption,
                      **r.info} for r in chosen],
        "keys": keys_and_steps(rows),
    })


def _item(store: Store, record: RunRecord, item_id: int, kind: str) -> Any:
    with store.read() as conn:
        row = media.get(conn, record.id, item_id)
    if row is None or row.kind != kind:
        raise NotFoundError(f"run {record.id} has no {kind} {item_id}")
    return row


@router.get("/runs/{run_id}/images")
def list_images(principal: Reader, store: StoreDep, run_id: str, key: str | None = None,
                step: StepQuery = None) -> Response:
    """The run's images (optionally of one key and/or step) and every key's steps."""
    return _listing("image", visible_run(store, principal, run_id).images(), key, step)


@router.get("/runs/{run_id}/images/{image_id}.png")
def image_png(principal: Reader, store: StoreDep, run_id: str, image_id: ItemId) -> Response:
    """The image as logged, a PNG."""
    record = visible_run(store, principal, run_id)
    row = _item(store, record, image_id, "image")
    return Response(store.blobs.read(row.sha256), media_type="image/png", headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox"})


@router.get("/runs/{run_id}/tables")
def list_tables(principal: Reader, store: StoreDep, run_id: str, key: str | None = None,
                step: StepQuery = None) -> Response:
    """The run's tables (their columns and sizes, not their rows) and every key's steps."""
    return _listing("table", visible_run(store, principal, run_id).tables(), key, step)


@router.get("/runs/{run_id}/tables/{table_id}")
def get_table(principal: Reader, store: StoreDep, run_id: str, table_id: ItemId) -> Response:
    """One table: its columns, their types ("number", "string", "bool", "json", "empty")
    and its rows (non-finite numbers as "NaN", "Infinity", "-Infinity")."""
    record = visible_run(store, principal, run_id)
    row = _item(store, record, table_id, "table")
    table = decode(store.blobs.read(row.sha256), row.key, row.step, row.caption)
    return json_response({"table_id": row.id, "key": row.key, "step": row.step,
                          "caption": row.caption, "columns": table.columns,
                          "types": table.types, "rows": table.rows})
