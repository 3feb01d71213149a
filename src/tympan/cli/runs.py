"""``tympan runs``: list runs, filtered and sorted, as a table or JSON."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.table import Table

from tympan.cli import render
from tympan.cli.context import opened_store
from tympan.records.export import run_fields, summary_fields
from tympan.records.query import RunQuery, split_metric_key
from tympan.records.record import RunRecord
from tympan.records.table import find_runs

COMMON_METRICS = 4  # metric columns picked by default, besides the sort key's


def runs_command(
    ctx: typer.Context,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", metavar="PROJECT", help="Only runs of this project."),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", metavar="STATUS",
                     help="Only runs with this status: running, finished, failed or crashed. "
                          "Repeat for any of several."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", metavar="TAG",
                     help="Only runs with this tag. Repeat: runs with all of them."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", metavar="KEY=VALUE",
                     help="Only runs whose config has KEY (dotted, e.g. model.encoder) equal "
                          "to VALUE; numbers compare as numbers. Repeat: all must match."),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", metavar="KEY",
                     help="Sort by a metric: KEY (its last value), KEY.min, KEY.max or "
                          "KEY.last; by a run field (started_at, name, duration...) or by "
                          "config:KEY. Runs without it come last. Default: newest first."),
    ] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Sort largest first.")] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", min=1, metavar="N", help="Show at most N runs."),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option("--columns", "-c", metavar="KEY,KEY",
                     help="Metric columns to show (KEY or KEY.min/.max/.last/.count), "
                          "comma-separated. Default: the sort key and the 4 most common."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of runs instead of a table.")
    ] = False,
) -> None:
    """List runs, newest first: filter by project, status, tag and config; sort by a metric."""
    query = RunQuery.from_options(project=project, status=status, tags=tag or (),
                                  where=where, sort=sort, descending=desc, limit=limit)
    with opened_store(ctx) as store:
        records = find_runs(store, query)
    if as_json:
        render.print_json([
            {**run_fields(r), "summary": summary_fields(r.summary)} for r in records
        ])
        return
    out = render.console()
    if not records:
        out.print("no runs match")
        return
    metric_sort = (query.sort.key, query.sort.field) if query.sort is not None \
        and query.sort.kind == "metric" else None
    chosen = parse_columns(columns) if columns else default_columns(records, metric_sort)
    out.print(runs_table(records, chosen, show_project=project is None))


def parse_columns(text: str) -> list[tuple[str, str]]:
    return [split_metric_key(part.strip()) for part in text.split(",") if part.strip()]


def default_columns(records: list[RunRecord], sort: tuple[str, str] | None
                    ) -> list[tuple[str, str]]:
    """The sort metric's column, then the metric keys most runs have (last value)."""
    chosen = [sort] if sort else []
    counts = Counter(key for record in records for key in record.summary)
    common = sorted(counts, key=lambda key: (-counts[key], key))
    chosen += [(key, "last") for key in common if (key, "last") not in chosen][:COMMON_METRICS]
    return chosen


def runs_table(records: list[RunRecord], metric_columns: list[tuple[str, str]],
               show_project: bool = True) -> Table:
    headers = [key if field_name == "last" else f"{key}.{field_name}"
               for key, field_name in metric_columns]
    run_columns = ["id", "name", "project", "status", "started", "duration", "tags"]
    if not show_project:
        run_columns.remove("project")
    table = render.table(*run_columns, *headers, right=["duration", *headers],
                         no_wrap=["id", "status", "started", "duration", *headers])
    table.columns[1].min_width = 12  # names fold, but stay readable
    for record in records:
        cells = []
        for key, field_name in metric_columns:
            summary = record.summary.get(key)
            cells.append(render.number(None if summary is None else getattr(summary, field_name)))
        project = [render.text(record.project)] if show_project else []
        table.add_row(
            render.text(record.id), render.text(record.name), *project,
            render.status(record.status), render.short_time(record.started_at),
            render.duration(record.duration), render.text(", ".join(record.tags or [])),
            *cells,
        )
    return table
