"""``tympan run``: run a recipe (or any training script) with ``key=value`` overrides."""

from __future__ import annotations

import os
from typing import Annotated

import typer


def run_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        metavar="RECIPE", help="A recipe directory (recipes/asr_ctc), a .py file or a module.")],
) -> None:
    """Run RECIPE with the rest of the command line (--config FILE, key=value overrides)."""
    from tympan.entry import resolve_entry

    if target in ("-h", "--help"):  # the rest of the line is the recipe's, --help included
        typer.echo(ctx.get_help())
        raise typer.Exit()
    options = ctx.obj
    entry = resolve_entry(target)
    if options is not None and options.store:
        # Recipes take their store from TYMPAN_STORE, as every tympan.init() does.
        os.environ["TYMPAN_STORE"] = options.store
    entry.run(ctx.args)
