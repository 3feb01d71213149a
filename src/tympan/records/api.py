"""The module-level reading API: ``tympan.load_run`` and ``tympan.find_runs``. Kept
import-light: the store and the query machinery load on first use."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tympan.records.record import RunRecord


def load_run(run: str, store: str | os.PathLike[str] | None = None) -> RunRecord:
    """A stored run by id, id prefix or unique name."""
    from tympan.records.record import get_run
    from tympan.track.stores import shared_store

    return get_run(shared_store(store), run)


def find_runs(
    store: str | os.PathLike[str] | None = None,
    *,
    project: str | None = None,
    status: Sequence[str] | str | None = None,
    tags: Sequence[str] | str = (),
    where: Mapping[str, object] | Sequence[str] | str | None = None,
    text: str | None = None,
    study: str | None = None,
    sort: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> list[RunRecord]:
    """Stored runs matching every filter, newest first unless ``sort`` says otherwise.

    ``where`` is ``{"model.encoder": "gru"}`` (dotted config keys; values compared as text,
    numbers as numbers) or conditions as text; ``text`` is a substring of the run's name or
    id; ``sort`` is a metric (``KEY``, ``KEY.min``, ``KEY.max``, ``KEY.count``), a run field
    (``started_at``, ``name``, ``duration``...) or ``config:KEY``. Runs without the sort's
    value come last. The same query as ``tympan runs`` and ``GET /api/runs``.
    """
    from tympan.records.query import RunQuery
    from tympan.records.table import find_runs as run_query
    from tympan.track.stores import shared_store

    query = RunQuery.from_options(
        project=project, status=status, tags=tags, where=where, text=text, study=study,
        sort=sort, descending=descending, limit=limit)
    return run_query(shared_store(store), query)
