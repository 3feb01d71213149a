"""``tympan export RUN``: a run's metrics as CSV or JSON (format in records/export.py)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tympan.cli.context import opened_source
from tympan.errors import InvalidInputError


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


def export_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run id, unique id prefix or name.")],
    format: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", case_sensitive=False,
                     help="csv: one row per point (key,step,time,value). json: the run, its "
                          "summary and every series."),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", dir_okay=False,
                     help="Write to FILE instead of stdout."),
    ] = None,
) -> None:
    """Export a run's metrics: every point as CSV, or everything as standard JSON."""
    from tympan.records.export import export_run

    with opened_source(ctx) as source:
        record = source.run(run)
        if output is None:
            export_run(record, format.value, sys.stdout)
            return
        try:
            with open(output, "w", encoding="utf-8", newline="") as out:
                export_run(record, format.value, out)
        except OSError as exc:
            raise InvalidInputError(f"cannot write {output}: {exc.strerror or exc}") from None
    typer.echo(f"exported run {record.id} as {format.value} to {output}", err=True)
