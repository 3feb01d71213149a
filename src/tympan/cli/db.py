"""``tympan db``: schema revisions and upgrades, checking a store's file, collecting blobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tympan.cli.context import opened_store, options
from tympan.errors import InvalidInputError, StoreCorruptError

db_app = typer.Typer(
    name="db",
    help="Inspect, check and migrate the store.",
    no_args_is_help=True,
)


@db_app.command("upgrade")
def upgrade_command(ctx: typer.Context) -> None:
    """Migrate the store to this tympan's schema (creates the store if there is none)."""
    from tympan.store import upgrade_store

    before, after, where = upgrade_store(options(ctx).store)
    if before is None:
        note = f"created a new store at {where}"
    elif before == after:
        note = f"already up to date at {where}"
    else:
        note = f"migrated the store at {where}"
    typer.echo(f"schema revision {before or 'none'} -> {after} ({note})")


@db_app.command("current")
def current_command(ctx: typer.Context) -> None:
    """Print the store's schema revision, the one this tympan expects, and where the store is."""
    from tympan.store import store_revision, versioning

    revision, where = store_revision(options(ctx).store)
    state = "up to date" if revision == versioning.HEAD else "run `tympan db upgrade`"
    typer.echo(f"store: {where}")
    typer.echo(f"store schema revision: {revision or 'none'}")
    typer.echo(f"this tympan expects: {versioning.HEAD} ({state})")


@db_app.command("check")
def check_command(ctx: typer.Context) -> None:
    """Check a SQLite store's file with SQLite's integrity_check; list any damage."""
    from tympan.store import check_store, integrity

    where, found = check_store(options(ctx).store)
    if not found:
        typer.echo(f"ok: the store at {where} passed SQLite's integrity_check")
        return
    typer.echo(f"the store at {where} is damaged; SQLite's integrity_check found:")
    for problem in found:
        typer.echo(f"  {problem}")
    raise StoreCorruptError(integrity.damaged(Path(where), found, "integrity_check"))


@db_app.command("gc")
def gc_command(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option(
        "--older-than", metavar="AGE",
        help="Collect only files older than this (30s, 10m, 24h, 7d), so a running "
             "process's blob whose record is on its way is never taken.")] = "24h",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would be removed; remove nothing.")] = False,
) -> None:
    """Remove blob files no record refers to: orphans of killed writers, replaced artifacts,
    unfinished copies."""
    from tympan.store.garbage import collect

    seconds = parse_age(older_than)
    with opened_store(ctx) as store:
        found = collect(store, older_than=seconds, dry_run=dry_run)
        root = store.blobs.root
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {found.files} files ({found.bytes / 2**20:.1f} MiB) from {root}: "
               f"{found.orphans} never recorded, {found.unreferenced} no longer referenced, "
               f"{found.unfinished} unfinished copies")
    if found.kept_fresh:
        typer.echo(f"kept {found.kept_fresh} unreferenced files younger than {older_than}")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """'90' or '90s', '10m', '24h', '7d' as seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _AGE_UNITS else (text, "s")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InvalidInputError(
            f"--older-than {text!r} is not an age: use a number of seconds, or one with s, m, "
            "h or d (30s, 10m, 24h, 7d)")
    return value * _AGE_UNITS[unit]
