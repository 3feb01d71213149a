"""``tympan db``: the store's schema revision, migrating or creating a store, checking a file."""

from __future__ import annotations

from pathlib import Path

import typer

from tympan.cli.context import options
from tympan.errors import StoreCorruptError
from tympan.store import check_store, integrity, store_revision, upgrade_store, versioning

db_app = typer.Typer(
    name="db",
    help="Inspect, check and migrate the store.",
    no_args_is_help=True,
)


@db_app.command("upgrade")
def upgrade_command(ctx: typer.Context) -> None:
    """Migrate the store to this tympan's schema (creates the store if there is none)."""
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
    revision, where = store_revision(options(ctx).store)
    state = "up to date" if revision == versioning.HEAD else "run `tympan db upgrade`"
    typer.echo(f"store: {where}")
    typer.echo(f"store schema revision: {revision or 'none'}")
    typer.echo(f"this tympan expects: {versioning.HEAD} ({state})")


@db_app.command("check")
def check_command(ctx: typer.Context) -> None:
    """Check a SQLite store's file with SQLite's integrity_check; list any damage."""
    where, found = check_store(options(ctx).store)
    if not found:
        typer.echo(f"ok: the store at {where} passed SQLite's integrity_check")
        return
    typer.echo(f"the store at {where} is damaged; SQLite's integrity_check found:")
    for problem in found:
        typer.echo(f"  {problem}")
    raise StoreCorruptError(integrity.damaged(Path(where), found, "integrity_check"))
