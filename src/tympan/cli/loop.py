"""``tympan loop run|watch|status PIPELINE``: continuous training (docs/loop.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tympan.cli.context import options

loop_app = typer.Typer(name="loop", no_args_is_help=True,
                       help="Continuous training: retrain on new data, gate, promote.")
PipelineArg = Annotated[Path, typer.Argument(metavar="PIPELINE", help="A pipeline file (YAML).")]


def _say(line: str) -> None:
    typer.echo(line)


@loop_app.command("run")
def run_command(ctx: typer.Context, pipeline: PipelineArg) -> None:
    """Run one iteration if the data folder holds new data."""
    from tympan.loop.iteration import run_iteration
    from tympan.loop.spec import load_pipeline

    result = run_iteration(load_pipeline(pipeline), store=options(ctx).store, say=_say)
    if result.status == "idle":
        typer.echo(f"no new data: champion is version {result.champion}")
    else:
        typer.echo(f"{result.status}: gate run {result.gate_run}")


@loop_app.command("watch")
def watch_command(
    ctx: typer.Context, pipeline: PipelineArg,
    interval: Annotated[float, typer.Option("--interval", metavar="S",
                                            help="Seconds between polls.")] = 10.0,
    debounce: Annotated[float, typer.Option("--debounce", metavar="S",
                                            help="Seconds new data must stay unchanged "
                                                 "before it counts.")] = 5.0,
    max_iterations: Annotated[int | None, typer.Option("--max-iterations", metavar="N",
                                                       help="Stop after N iterations.")] = None,
) -> None:
    """Poll the data folder and the pipeline's triggers (new data, a drift alarm of a
    serving run, a schedule) and run an iteration when one fires (Ctrl-C stops it)."""
    from tympan.loop.spec import load_pipeline
    from tympan.loop.watch import watch

    try:
        done = watch(load_pipeline(pipeline), store=options(ctx).store, interval=interval,
                     debounce=debounce, max_iterations=max_iterations, say=_say)
    except KeyboardInterrupt:
        typer.echo("stopped")
        return
    typer.echo(f"{len(done)} iteration(s): " + ", ".join(i.status for i in done))


@loop_app.command("status")
def status_command(ctx: typer.Context, pipeline: PipelineArg) -> None:
    """Each iteration (new data, champion vs challenger with the interval, verdict) and the
    data still waiting."""
    from tympan.loop.history import iterations, pending
    from tympan.loop.spec import load_pipeline

    loaded = load_pipeline(pipeline)
    store = options(ctx).store
    rows = iterations(loaded, store)
    for it in rows:
        data = ", ".join(Path(p).name for p in it["new_manifests"])
        verdict = (f"promoted version {it['challenger']}" if it["passed"] else "rejected")
        typer.echo(f"{it['run']}  [{it['trigger']}]  +{data}  champion v{it['champion']}: "
                   f"{verdict}  {it['summary']}")
    if not rows:
        typer.echo("no iterations yet")
    waiting = pending(loaded, store)
    typer.echo(f"waiting: {', '.join(Path(p).name for p in waiting) or 'nothing'}")


@loop_app.command("label")
def label_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="SERVING_RUN",
                                       help="The serving run whose sampled audio to label.")],
    labels: Annotated[Path | None, typer.Option("--labels", metavar="FILE",
                                                help="The filled sheet (CSV) to import; "
                                                     "without it, print the sheet.")] = None,
    out: Annotated[Path | None, typer.Option("--out", metavar="DIR",
                                             help="With --labels: the new batch folder (in "
                                                  "the pipeline's data folder).")] = None,
    lang: Annotated[str, typer.Option("--lang", help="The language the clips are in "
                                                     "(the manifest's lang).")] = "en",
) -> None:
    """Label the audio a serving run sampled: print a sheet (CSV) of its clips with the
    model's answers as transcripts; with --labels, write the kept clips as WAV files and a
    manifest.jsonl into --out, a new batch of training data."""
    from tympan.errors import InvalidInputError
    from tympan.loop.label import labelling_sheet, sheet_csv, write_batch
    from tympan.records.source import opened_source

    if (labels is None) != (out is None):
        raise InvalidInputError("give --labels FILE and --out DIR together (import a filled "
                                "sheet), or neither (print the sheet)")
    with opened_source(options(ctx).store) as source:
        if labels is None or out is None:
            typer.echo(sheet_csv(labelling_sheet(source, run)), nl=False)
            return
        rows = write_batch(source, run, labels, out, lang=lang)
    typer.echo(f"wrote {len(rows)} labelled clip(s) and {out / 'manifest.jsonl'}")
