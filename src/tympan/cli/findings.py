"""``tympan findings``: what studies found, pooled across them; ``findings export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tympan.cli import render
from tympan.cli.context import opened_studies

findings_app = typer.Typer(no_args_is_help=False, add_completion=False)


@findings_app.callback(invoke_without_command=True)
def findings_command(
    ctx: typer.Context,
    component: Annotated[
        str | None,
        typer.Option("--component", metavar="COMPONENT", show_default=False,
                     help="Only this component (a factor name such as encoder)."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option("--metric", metavar="METRIC", show_default=False,
                     help="Only this metric key, such as test/wer."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Pooled evidence of every study about each component, level and metric."""
    if ctx.invoked_subcommand is not None:
        return
    from tympan.study.findings import pooled_findings  # scipy: only when it is used

    with opened_studies(ctx) as studies:
        found = pooled_findings(studies, component=component, metric=metric)
    if as_json:
        render.print_json([f.as_dict() for f in found])
        return
    out = render.console()
    if not found:
        out.print(render.text("no findings yet: run `tympan report STUDY` after a study",
                              style="dim"))
        return
    table = render.table("component", "level vs baseline", "metric", "studies",
                         "improves/hurts/undecided", "pooled effect [95% CI]", "I²", "",
                         right=["studies", "pooled effect [95% CI]", "I²"])
    for f in found:
        i2 = "-" if f.i_squared is None else f"{f.i_squared:.0%}"
        table.add_row(render.text(f.component), render.text(f"{f.level} vs {f.baseline}"),
                      render.text(f.metric), str(f.studies),
                      f"{f.improves}/{f.hurts}/{f.undecided}",
                      f"{f.estimate:+.3g} [{f.low:.3g}, {f.high:.3g}]", i2,
                      render.text("⚠ contradiction", style="bold red") if f.contradiction else "")
    out.print(table)


@findings_app.command("export")
def export_command(
    ctx: typer.Context,
    wiki: Annotated[
        Path,
        typer.Option("--wiki", metavar="DIR", show_default=False,
                     help="Directory to write the wiki pages into (created if missing)."),
    ],
    link_base: Annotated[
        str | None,
        typer.Option("--link-base", metavar="URL", show_default=False,
                     help="Link study ids to URL + id instead of the page's study list."),
    ] = None,
) -> None:
    """Write the findings as Markdown: a page per component and index.md."""
    from tympan.study.findings import export_wiki

    with opened_studies(ctx) as studies:
        paths = export_wiki(studies, wiki, link_base=link_base)
    for path in paths:
        typer.echo(str(path))
