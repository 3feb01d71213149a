"""``tympan report STUDY``: write a study's report and record its findings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tympan.cli import render
from tympan.cli.context import StudyProjectOpt, opened_studies
from tympan.cli.study import print_verdicts


def report_command(
    ctx: typer.Context,
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name, id or id prefix.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", show_default=False,
                     help="Directory to write the report into. Default: reports/<study name>"),
    ] = None,
    project: StudyProjectOpt = None,
    link_base: Annotated[
        str | None,
        typer.Option("--link-base", metavar="URL", show_default=False,
                     help="Link run ids in the HTML to URL + id, e.g. "
                          "http://127.0.0.1:8080/runs/"),
    ] = None,
) -> None:
    """Write a study's report (report.md, forest.svg, report.html) and record its findings."""
    from tympan.study.report import make_report

    with opened_studies(ctx) as studies:
        analysis, paths = make_report(studies, study, out, project=project, link_base=link_base)
    output = render.console()
    print_verdicts(analysis)
    for note in analysis.notes:
        output.print(render.text(f"note: {note}", style="yellow"))
    for kind in ("html", "markdown", "svg"):
        output.print(render.text(f"{kind}: {paths[kind]}"))
