"""``tympan runs``: list runs, filtered and sorted, as a table or JSON."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer

from tympan.cli import render
from tympan.cli.context import opened_source

if TYPE_CHECKING:
    from rich.table import Table

    from tympan.records.query import RunQuery
    from tympan.records.record import RunRecord

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
        typer.Option("--where", "-w", metavar="EXPR",
                     help="Only runs where EXPR holds, in the query language of "
                          "docs/query.md: 'model.encoder = gru', 'encoder in (conv, gru)', "
                          "'test/wer.min < 0.1', 'lr >= 1e-3', 'tags has mfcc', "
                          "'status != crashed', or a word to search names and ids; clauses "
                          "joined by 'and'. Repeat: all must hold."),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", metavar="KEY",
                     help="Sort by a metric summary (KEY is its last value; KEY.min, "
                          "KEY.max, KEY.last, KEY.count), a config key, a run field "
                          "(started_at, name, duration...), or config:KEY / metric:KEY when "
                          "a name is both. Runs without it come last. Default: newest first."),
    ] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Sort largest first.")] = False,
    archived: Annotated[
        str, typer.Option("--archived", metavar="hide|include|only",
                          help="Archived runs (tympan archive): hide them (the default), "
                               "include them, or list only them.")
    ] = "hide",
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
    """List runs, newest first: filter by project, status, tag, config and metrics; sort by
    a metric or a config key."""
    from tympan.records.export import run_fields, summary_fields
    from tympan.records.query import RunQuery

    query = RunQuery.from_options(project=project, status=status, tags=tag or (),
                                  where=where, archived=archived, sort=sort, descending=desc,
                                  limit=limit)
    with opened_source(ctx) as source:
        records = source.find_runs(query)
    if as_json:
        render.print_json([
            {**run_fields(r), "summary": summary_fields(r.summary)} for r in records
        ])
        return
    out = render.console()
    if not records:
        out.print("no runs match")
        return
    metric_sort = sorted_metric(query, records)
    chosen = parse_columns(columns) if columns else default_columns(records, metric_sort)
    out.print(runs_table(records, chosen, show_project=project is None))


def sorted_metric(query: RunQuery, records: list[RunRecord]) -> tuple[str, str] | None:
    """(key, summary) of the metric the runs are sorted by, if they are."""
    from tympan.records.query import split_metric_key

    sort = query.sort
    if sort is None or sort.kind not in ("metric", "key"):
        return None
    if sort.kind == "metric":
        return sort.key, sort.field
    key, field_name = split_metric_key(sort.key)
    if any(key in r.summary for r in records):
        return key, field_name
    if any(sort.key in r.summary for r in records):
        return sort.key, "last"
    return None  # a config key


def parse_columns(text: str) -> list[tuple[str, str]]:
    from tympan.records.query import split_metric_key

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
