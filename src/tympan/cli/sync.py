"""``tympan sync [--dry-run]``: send what processes journaled on disk while their tympan server
was down (the journals and their sending are in track/journal.py and track/sync.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tympan.cli.context import options
from tympan.errors import InvalidInputError, StoreUnavailableError, TympanError

if TYPE_CHECKING:
    from tympan.track.remote import HttpTransport
    from tympan.track.sync import Sent, Waiting


def sync_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what waits to be sent; send nothing."),
    ] = False,
) -> None:
    """Send the points and files that processes journaled on disk while their tympan server
    was down (TYMPAN_STORE=http://...), each exactly once."""
    from tympan import settings
    from tympan.store.location import is_remote
    from tympan.track.journal import server_folder, set_aside
    from tympan.track.remote import HttpTransport
    from tympan.track.sync import waiting

    where = options(ctx).store or settings.get("TYMPAN_STORE")
    if not is_remote(where):
        raise InvalidInputError(
            "tympan sync sends to a tympan server: set TYMPAN_STORE (or --store) to "
            "http(s)://HOST:PORT; only runs logged to a server are journaled on disk")
    transport = HttpTransport(where, settings.get("TYMPAN_TOKEN"))
    try:
        items = waiting(transport.where)
        folder = server_folder(transport.where)
        for kept in set_aside(folder):
            typer.echo(f"kept aside, damaged (not sent again; look, then delete): {kept}")
        if not items:
            typer.echo(f"nothing waits for {transport.where} (in {folder})")
            return
        for item in items:
            typer.echo(_describe(item))
        if dry_run:
            return
        results, in_use = _send(transport, sum(i.records for i in items if not i.in_use))
    except StoreUnavailableError as exc:
        raise StoreUnavailableError(f"{exc}; the journals are kept: run `tympan sync` again "
                                    "once the server is up") from None
    finally:
        transport.close()
    problems = []
    for sent in results:
        typer.echo(f"sent {sent.name}: {sent.records} records, {sent.points} points, "
                   f"{sent.files} files")
        for refusal in sent.refused:
            typer.echo(f"  refused by the server, skipped: {refusal}", err=True)
        if sent.note:
            typer.echo(f"  {sent.note}; that record is dropped", err=True)
        if sent.problem:
            problems.append(sent.problem)
    for folder in in_use:
        typer.echo(f"skipped {folder.name}: a live process or another tympan sync holds it")
    if problems:
        raise TympanError("; ".join(problems))


def _send(transport: HttpTransport, total: int) -> tuple[list[Sent], list[Path]]:
    """Send with a progress bar (records) on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tympan.cli.render import console
    from tympan.track.sync import send_waiting

    bar = Progress(TextColumn("[bold]sending"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("records"), console=console(), disable=not sys.stdout.isatty())
    with bar:
        task = bar.add_task("sync", total=total)
        started = time.monotonic()
        results = send_waiting(transport, on_record=lambda _: bar.advance(task))
    if not sys.stdout.isatty():
        typer.echo(f"sent in {time.monotonic() - started:.1f} s")
    return results


def _describe(item: Waiting) -> str:
    if item.in_use:
        return f"{item.folder.name}: in use by a live process or another tympan sync"
    about = item.about
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(about.get("started", 0)))
    runs = ", ".join(sorted(item.runs)) or "none"
    line = (f"{item.folder.name}: pid {about.get('pid')} on {about.get('host')}, started "
            f"{started}; runs {runs}; {item.records} records, {item.points} points, "
            f"{item.files} files, {item.bytes / 2**20:.1f} MiB")
    if item.problem:
        line += f"\n  {item.problem}"
    return line
