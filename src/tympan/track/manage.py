"""Managing stored runs after the fact: rename, retag, annotate, archive, delete.

These are a person's edits, not a training process's writes, so each one is audited: a row of
``run_events`` says who (the token on a server, the local user on the CLI), what it was before
and after, and when, in the same transaction as the change. The team server's routes and
``tympan edit|archive|unarchive|delete`` both run these functions; nothing else writes these
fields after a run was created (``tympan.init`` sets name, tags and note while it runs).

Archiving hides runs from listings (``find_runs``, ``tympan runs``, the runs table) unless
they are asked for; it changes nothing else. Deleting removes a run and its child runs (the
probe runs of a model's run) with everything recorded under them, and then the blobs that no
other record names: a blob a writer touched after the delete began is kept (it is recording
the same bytes again, see ``store/garbage.py``). A running run is never deleted, and a run
that a registered model version or report refers to is kept: its lineage would break.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tympan.errors import InvalidInputError, RunNotFoundError, RunStateError
from tympan.store import Store, projects, run_events, runs
from tympan.store.garbage import collect_released
from tympan.track.validate import check_name, check_tags, check_text

__all__ = ["Deleted", "RunEdit", "archive_runs", "delete_runs", "edit_run"]

MAX_RUNS = 10_000  # runs one archive or delete may name


@dataclass(frozen=True)
class RunEdit:
    """What to change about one run; None (or empty) leaves a field as it is."""

    name: str | None = None
    tags: Sequence[str] | None = None  # the run's tags, replaced
    add_tags: Sequence[str] = ()
    remove_tags: Sequence[str] = ()
    note: str | None = None

    def is_empty(self) -> bool:
        return (self.name is None and self.tags is None and not self.add_tags
                and not self.remove_tags and self.note is None)


@dataclass
class Deleted:
    """What a delete removed."""

    runs: list[str]  # ids, the children that went with their parents included
    blob_files: int  # blob files no other record named, removed
    blob_bytes: int
    children: list[str] = field(default_factory=list)  # of runs, deleted with them


def edit_run(store: Store, run_id: str, edit: RunEdit, actor: str,
             now: float | None = None) -> dict[str, Any]:
    """Apply ``edit`` to the run ``run_id`` (a full id) and audit each field changed; the
    run's name, tags and note as they are now come back. Changing nothing is an error."""
    if edit.is_empty():
        raise InvalidInputError("nothing to change: give a new name, tags, tags to add or "
                                "remove, or a note")
    name = None if edit.name is None else check_name(edit.name.strip(), "run name")
    replaced = None if edit.tags is None else check_tags(list(edit.tags))
    added, removed = check_tags(list(edit.add_tags)), check_tags(list(edit.remove_tags))
    if set(added) & set(removed):
        raise InvalidInputError(f"tag {sorted(set(added) & set(removed))[0]!r} is both added "
                                "and removed")
    note = None if edit.note is None else check_text(edit.note, "note")
    at = time.time() if now is None else now
    with store.write() as conn:
        row = _row(conn, store, run_id)
        changes: dict[str, Any] = {}
        if name is not None and name != row.name:
            changes["name"] = name
            run_events.add(conn, run_id, row.project_id, "rename", actor,
                           {"before": row.name, "after": name}, at)
        tags = list(row.tags or []) if replaced is None else replaced
        tags = [t for t in tags if t not in removed] + [t for t in added if t not in tags]
        if tags != list(row.tags or []):
            changes["tags"] = tags
            run_events.add(conn, run_id, row.project_id, "tags", actor,
                           {"before": list(row.tags or []), "after": tags}, at)
        if note is not None and note != row.note:
            changes["note"] = note
            run_events.add(conn, run_id, row.project_id, "note", actor,
                           {"before": row.note, "after": note}, at)
        if changes:
            runs.set_fields(conn, run_id, **changes)
        return {"id": run_id, "name": changes.get("name", row.name),
                "tags": changes.get("tags", list(row.tags or [])),
                "note": changes.get("note", row.note), "archived_at": row.archived_at,
                "changed": sorted(changes)}


def archive_runs(store: Store, run_ids: Sequence[str], actor: str, archived: bool = True,
                 now: float | None = None) -> list[str]:
    """Archive (or with ``archived=False`` unarchive) these runs (full ids); the ids whose
    state changed come back (archiving an archived run changes nothing and is not audited).
    An unknown id refuses the whole request."""
    ids = _distinct(run_ids, "archive" if archived else "unarchive")
    at = time.time() if now is None else now
    with store.write() as conn:
        rows = _rows(conn, store, ids)
        changed = [r for r in rows if (r.archived_at is None) == archived]
        runs.set_archived(conn, [r.id for r in changed], at if archived else None)
        for row in changed:
            run_events.add(conn, row.id, row.project_id,
                           "archive" if archived else "unarchive", actor,
                           {"before": row.archived_at, "after": at if archived else None}, at)
    return [r.id for r in changed]


def delete_runs(store: Store, run_ids: Sequence[str], actor: str,
                now: float | None = None) -> Deleted:
    """Delete these runs (full ids) and their child runs, with everything recorded under
    them, then the blobs no other record names (see the module docstring). Refused as a
    whole if a run is unknown, still running, or referred to by the model registry."""
    ids = _distinct(run_ids, "delete")
    began = time.time()
    at = began if now is None else now
    with store.write() as conn:
        rows = _rows(conn, store, ids)
        children = runs.descendant_ids(conn, ids)
        every = rows + (runs.by_ids(conn, children) if children else [])
        running = [r.id for r in every if r.status == "running"]
        if running:
            raise RunStateError(f"run {running[0]} is running: finish or stop it before "
                                f"deleting it ({len(running)} running)")
        used = runs.model_uses(conn, [r.id for r in every])
        if used:
            run_id, what = used[0]
            raise RunStateError(f"run {run_id} is the source of {what} in the model "
                                "registry: it is kept for that version's lineage")
        for row in every:
            run_events.add(conn, row.id, row.project_id, "delete", actor,
                           {"name": row.name, "parent_id": row.parent_id,
                            "status": row.status}, at)
        shas = runs.delete_runs(conn, [r.id for r in every])
    files, freed = collect_released(store, shas, began)
    return Deleted(runs=[r.id for r in every], blob_files=files, blob_bytes=freed,
                   children=children)


def _distinct(run_ids: Sequence[str], what: str) -> list[str]:
    ids = list(dict.fromkeys(i.strip() for i in run_ids if i and i.strip()))
    if not ids:
        raise InvalidInputError(f"{what} which runs? give at least one run id")
    if len(ids) > MAX_RUNS:
        raise InvalidInputError(f"{what} at most {MAX_RUNS} runs at once, got {len(ids)}")
    return ids


def _row(conn: Any, store: Store, run_id: str) -> Any:
    row = runs.get(conn, run_id)
    if row is None:
        raise RunNotFoundError(f"no run with id {run_id!r} in the store at {store.where}")
    return row


def _rows(conn: Any, store: Store, ids: list[str]) -> list[Any]:
    found = {row.id: row for row in runs.by_ids(conn, ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise RunNotFoundError(f"no run with id {missing[0]!r} in the store at {store.where}"
                               + (f" ({len(missing)} ids unknown)" if len(missing) > 1 else ""))
    return [found[i] for i in ids]


def project_of(store: Store, run_ids: Sequence[str]) -> dict[str, str]:
    """run id -> its project's name, for the runs that exist."""
    with store.read() as conn:
        names = projects.names(conn)
        return {row.id: names[row.project_id] for row in runs.by_ids(conn, list(run_ids))}
