"""The server's route modules, by module path; each exposes ``router: APIRouter``.

``create_app`` imports every module listed here and includes its router; a module that fails
to import stops the server from starting (nothing is skipped silently).
"""

from __future__ import annotations

ROUTERS: list[str] = [
    "tympan.server.routes.session",
    "tympan.server.routes.ingest",
    "tympan.server.routes.table_export",  # /runs/export before /runs/{run_id}
    "tympan.server.routes.runs",
    "tympan.server.routes.manage",
    "tympan.server.routes.records",
    "tympan.server.routes.study_records",
    "tympan.server.routes.metrics",
    "tympan.server.routes.media",
    "tympan.server.routes.images_tables",
    "tympan.server.routes.studies",
    "tympan.server.routes.probe",
    "tympan.server.routes.listening",
    "tympan.server.routes.models",
    "tympan.server.routes.loop",
    "tympan.server.routes.mlflow_compat",
    "tympan.server.routes.pages",
]
