"""What the top-level options hand down to every command through the Typer context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from tympan.records.source import RunSource
    from tympan.store import Store
    from tympan.study.source import StudySource

# --project of the commands that name a study (study, report, quantify): study names are unique
# only within a project.
StudyProjectOpt = Annotated[str | None, typer.Option(
    "--project", metavar="PROJECT", show_default=False,
    help="The project of the study, when several projects have one of that name.")]


@dataclass(frozen=True)
class CliOptions:
    """The global options: ``store`` is None for the TYMPAN_STORE setting, else ./.tympan."""

    store: str | None = None


def options(ctx: typer.Context) -> CliOptions:
    found = ctx.find_object(CliOptions)
    return found if found is not None else CliOptions()


@contextmanager
def opened_store(ctx: typer.Context) -> Iterator[Store]:
    """The store named by ``--store``, closed when the command is done."""
    from tympan.store import open_store  # SQLAlchemy loads only for commands that read

    store = open_store(options(ctx).store)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def opened_source(ctx: typer.Context) -> Iterator[RunSource]:
    """Where the runs named by ``--store`` are read from, closed when the command is done: the
    store, or a tympan server (``http(s)://``, with TYMPAN_TOKEN)."""
    from tympan.records.source import opened_source as opened

    with opened(options(ctx).store) as source:
        yield source


@contextmanager
def opened_studies(ctx: typer.Context) -> Iterator[StudySource]:
    """The study records at ``--store``, closed when the command is done: the store, or a
    tympan server (``http(s)://``, with TYMPAN_TOKEN)."""
    from tympan.study.source import open_studies

    studies = open_studies(options(ctx).store)
    try:
        yield studies
    finally:
        studies.close()
