"""``tympan edit``, ``archive``, ``unarchive``, ``delete`` and ``history``: manage stored runs.

Each change is audited in the store as the local user (``user:NAME@HOST``); ``tympan
history`` lists those changes. The rules (what a delete takes with it, what it refuses) live
in ``tympan.track.manage``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tympan.cli import render
from tympan.cli.context import opened_store

if TYPE_CHECKING:
    from tympan.store import Store

Runs = Annotated[list[str], typer.Argument(metavar="RUN...",
                                           help="Run ids, unique id prefixes or names.")]


def _actor() -> str:
    from tympan.registry.actor import local_user

    return local_user().name


def _ids(store: Store, refs: list[str]) -> list[str]:
    from tympan.records.record import resolve_run_id

    return list(dict.fromkeys(resolve_run_id(store, ref) for ref in refs))


def edit_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run id, unique id prefix or name.")],
    name: Annotated[str | None, typer.Option("--name", metavar="NAME",
                                             help="Rename the run.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", metavar="TAG",
                                                  help="Add a tag. Repeat for several.")] = None,
    untag: Annotated[list[str] | None, typer.Option(
        "--untag", metavar="TAG", help="Remove a tag. Repeat for several.")] = None,
    note: Annotated[str | None, typer.Option("--note", metavar="TEXT",
                                             help="Replace the run's note ('' clears it).")
                    ] = None,
) -> None:
    """Rename a run, add or remove its tags, or replace its note (audited)."""
    from tympan.track.manage import RunEdit, edit_run

    with opened_store(ctx) as store:
        run_id = _ids(store, [run])[0]
        result = edit_run(store, run_id, RunEdit(name=name, add_tags=tag or (),
                                                 remove_tags=untag or (), note=note), _actor())
    if not result["changed"]:
        typer.echo(f"run {run_id} already was so: nothing changed")
        return
    tags = ", ".join(result["tags"]) or "none"
    typer.echo(f"run {run_id} ({result['name']}): changed {', '.join(result['changed'])}; "
               f"tags: {tags}")


def _archive(ctx: typer.Context, refs: list[str], archived: bool) -> None:
    from tympan.track.manage import archive_runs

    with opened_store(ctx) as store:
        ids = _ids(store, refs)
        changed = archive_runs(store, ids, _actor(), archived)
    verb = "archived" if archived else "unarchived"
    already = len(ids) - len(changed)
    typer.echo(f"{verb} {len(changed)} run{'s' if len(changed) != 1 else ''}"
               + (f" ({already} already {verb})" if already else ""))


def archive_command(ctx: typer.Context, runs: Runs) -> None:
    """Archive runs: hidden from `tympan runs`, find_runs and the UI unless asked for
    (--archived include)."""
    _archive(ctx, runs, True)


def unarchive_command(ctx: typer.Context, runs: Runs) -> None:
    """Unarchive runs: listed again."""
    _archive(ctx, runs, False)


def delete_command(
    ctx: typer.Context,
    runs: Runs,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
                   ] = False,
) -> None:
    """Delete runs for good, with their child runs, metrics, artifacts and audio, and the
    blob files no other record uses. Asks first unless --yes."""
    from tympan.store import runs as run_rows
    from tympan.track.manage import delete_runs

    with opened_store(ctx) as store:
        ids = _ids(store, runs)
        with store.read() as conn:
            names = {r.id: r.name for r in run_rows.by_ids(conn, ids)}
            children = run_rows.descendant_ids(conn, ids)
        if not yes:
            listed = ", ".join(f"{i} ({names[i]})" for i in ids[:5]) + (
                f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            extra = f" and {len(children)} child runs" if children else ""
            if not typer.confirm(f"delete {listed}{extra} for good?", default=False):
                typer.echo("nothing deleted")
                raise typer.Exit(1)
        deleted = delete_runs(store, ids, _actor())
    typer.echo(f"deleted {len(deleted.runs)} runs"
               + (f" ({len(deleted.children)} child runs)" if deleted.children else "")
               + f"; removed {deleted.blob_files} blob files "
               f"({render.size(deleted.blob_bytes)}) no other record used")


def history_command(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Argument(
        metavar="[RUN]", help="Only this run's changes (an id works for deleted runs).")
    ] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", metavar="PROJECT",
                                                help="Only this project's runs.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, metavar="N",
                                       help="Show the newest N changes.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Who renamed, retagged, annotated, archived or deleted which runs, newest first."""
    from tympan.errors import RunNotFoundError
    from tympan.records.table import check_project
    from tympan.store import projects, run_events

    with opened_store(ctx) as store:
        check_project(store, project)
        run_id = None
        if run is not None:
            try:
                run_id = _ids(store, [run])[0]
            except RunNotFoundError:
                run_id = run  # a deleted run: its events stay under its id
        with store.read() as conn:
            names = projects.names(conn)
            ids = None if project is None else [i for i, n in names.items() if n == project]
            rows = run_events.listed(conn, run_id=run_id, project_ids=ids, limit=limit)
    events = [{"at": r.at, "run_id": r.run_id, "project": names.get(r.project_id),
               "action": r.action, "actor": r.actor, "detail": r.detail} for r in rows]
    if as_json:
        render.print_json(events)
        return
    if not events:
        typer.echo("no changes recorded")
        return
    for e in events:
        when = render.local_time(e["at"], seconds=True)
        typer.echo(f"{when}  {e['run_id']}  {e['action']:<9}  {e['actor']}  "
                   f"{_detail(e['action'], e['detail'])}")


def _detail(action: str, detail: dict) -> str:
    if action in ("rename", "note"):
        return f"{detail.get('before')!r} -> {detail.get('after')!r}"
    if action == "tags":
        return f"{', '.join(detail.get('before') or []) or '-'} -> " \
               f"{', '.join(detail.get('after') or []) or '-'}"
    if action == "delete":
        return f"was {detail.get('name')!r} ({detail.get('status')})"
    return ""
