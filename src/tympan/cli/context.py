"""What the top-level options hand down to every command through the Typer context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer

from tympan.store import Store, open_store


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
    store = open_store(options(ctx).store)
    try:
        yield store
    finally:
        store.close()
