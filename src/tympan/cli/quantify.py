"""``tympan quantify STUDY --target test/wer=0.05``: how much data a target needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tympan.cli import render
from tympan.cli.context import StudyProjectOpt, opened_studies


def quantify_command(
    ctx: typer.Context,
    study: Annotated[str, typer.Argument(metavar="STUDY", help="A learning-curve study: name, "
                                                                "id or id prefix.")],
    target: Annotated[
        str | None,
        typer.Option("--target", metavar="METRIC=VALUE", show_default=False,
                     help="The quality to reach, e.g. test/wer=0.05 (or 5%). Without it: the "
                          "curve of the study's first metric."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option("--metric", metavar="METRIC", show_default=False,
                     help="The curve's metric when no --target names one. Default: the "
                          "study's first."),
    ] = None,
    level: Annotated[float, typer.Option("--level", help="Interval level.")] = 0.8,
    method: Annotated[
        str, typer.Option("--method", help="averaged (over curve shapes: power law, "
                                           "exponential, S-shaped; the default), weighted (one "
                                           "power law, by the seeds' and utterances' noise) or "
                                           "unweighted (the common practice).")] = "averaged",
    max_extrapolation: Annotated[
        float, typer.Option("--max-extrapolation", metavar="X",
                            help="Answer up to X times the largest data size measured.")] = 10.0,
    steps: Annotated[
        str | None,
        typer.Option("--steps", metavar="STEPS", show_default=False,
                     help="The training length to read, when the study varies it. Default: "
                          "the longest."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", show_default=False,
                     help="Where to write the plot and report. Default: "
                          "reports/<study name>/quantify"),
    ] = None,
    project: StudyProjectOpt = None,
) -> None:
    """Fit a learning-curve study and say how much data reaches a target, with an interval."""
    from tympan.study.curves_report import write_quantification  # numpy, scipy: only here
    from tympan.study.quantify import parse_target, quantify

    key, value = parse_target(target) if target is not None else (metric, None)
    with opened_studies(ctx) as studies:
        result = quantify(studies, study, metric=key, target=value, level=level, method=method,
                          max_extrapolation=max_extrapolation, steps=steps, project=project)
    paths = write_quantification(result, out or Path("reports") / result.study / "quantify")
    output = render.console()
    output.print(render.text(result.sentence + "."))
    for note in result.notes:
        output.print(render.text(f"note: {note}", style="yellow"))
    if "plot_skipped" in paths:
        output.print(render.text(f"note: {paths['plot_skipped']}", style="yellow"))
    for kind in ("png", "html", "markdown", "json"):
        if kind in paths:
            output.print(render.text(f"{kind}: {paths[kind]}"))
