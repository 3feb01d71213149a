"""What later steps measured on a model version: export parity, latency, gate results.

One row per (version, kind, name), replaced when measured again; ``data`` is the step's own
JSON and ``run_id`` the run holding its evidence, if any.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from tympan.store.schema import model_reports
from tympan.store.upsert import insert_for


def put(conn: Connection, version_id: int, kind: str, name: str, data: dict[str, Any],
        run_id: str | None, now: float, created_by: str) -> None:
    values = {"data": data, "run_id": run_id, "created_at": now, "created_by": created_by}
    stmt = insert_for(conn, model_reports).values(version_id=version_id, kind=kind, name=name,
                                                  **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["version_id", "kind", "name"],
                                            set_=values))


def for_version(conn: Connection, version_id: int) -> list[Row]:
    stmt = (select(model_reports).where(model_reports.c.version_id == version_id)
            .order_by(model_reports.c.kind, model_reports.c.name))
    return list(conn.execute(stmt))
