"""The module-level reading API: ``tympan.load_run`` and ``tympan.find_runs``. Kept
import-light: the store and the query machinery load on first use."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tympan.records.record import RunRecord


def load_run(run: str, store: str | os.PathLike[str] | None = None) -> RunRecord:
    """A stored run by id, id prefix, unique name or ``models:/`` URI; ``store`` (default
    TYMPAN_STORE) may be a tympan server's URL, read with TYMPAN_TOKEN."""
    from tympan.records.source import shared_source

    return shared_source(store).run(run)


def find_runs(
    store: str | os.PathLike[str] | None = None,
    *,
    project: str | None = None,
    status: Sequence[str] | str | None = None,
    tags: Sequence[str] | str = (),
    where: Mapping[str, object] | Sequence[str] | str | None = None,
    text: str | None = None,
    study: str | None = None,
    archived: str = "hide",
    sort: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> list[RunRecord]:
    """Stored runs matching every filter, newest first unless ``sort`` says otherwise.

    ``where`` is ``{"model.encoder": "gru"}`` (dotted config keys; values compared as text,
    numbers as numbers) or the query language of docs/query.md, one text or several that
    must all hold (``"test/wer.min < 0.1 and encoder in (conv, gru)"``); ``text`` is a
    substring of the run's name or id; ``sort`` is a metric (``KEY``, ``KEY.min``,
    ``KEY.max``, ``KEY.count``), a config key, a run field (``started_at``, ``name``,
    ``duration``...), or ``config:KEY`` / ``metric:KEY``. Runs without the sort's value come
    last. Archived runs are left out unless ``archived`` is "include" (or "only"). A key
    no run in scope has is an error naming the nearest ones. The same query as
    ``tympan runs`` and ``GET /api/runs``; ``store`` may be a tympan server's URL.
    """
    from tympan.records.query import RunQuery
    from tympan.records.source import shared_source

    query = RunQuery.from_options(
        project=project, status=status, tags=tags, where=where, text=text, study=study,
        archived=archived, sort=sort, descending=descending, limit=limit)
    return shared_source(store).find_runs(query)
