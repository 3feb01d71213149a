"""``tympan import tensorboard|mlflow``: runs recorded by other trackers, copied in once.

Thin: each command reads its options, calls the importer of ``tympan.integrations.importers``
with the transport of ``--store`` (a local store or a tympan server) and prints one line per
run. The importers (and tensorboard or mlflow) load only when a command runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tympan.cli.context import options

if TYPE_CHECKING:
    from tympan.integrations.importers.writing import Imported

import_app = typer.Typer(
    name="import",
    help="Import runs from TensorBoard log directories and MLflow tracking servers.",
    no_args_is_help=True,
)


@import_app.command("tensorboard")
def tensorboard_command(
    ctx: typer.Context,
    logdir: Annotated[Path, typer.Argument(metavar="LOGDIR", help="A TensorBoard log "
                                           "directory: every run directory under it is read.")],
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="PROJECT", show_default=False,
                     help="Project of the imported runs (default: TYMPAN_PROJECT)."),
    ] = None,
) -> None:
    """Import TensorBoard runs: scalars (every point), audio, images, text and hparams.

    One tympan run per run directory; importing again adds only what is new."""
    from tympan import settings
    from tympan.integrations.importers.tensorboard import import_logdir
    from tympan.track.stores import shared_transport

    transport = shared_transport(options(ctx).store)
    _report(import_logdir(transport, logdir, project or settings.get("TYMPAN_PROJECT")))


@import_app.command("mlflow")
def mlflow_command(
    ctx: typer.Context,
    tracking_uri: Annotated[
        str,
        typer.Option("--tracking-uri", metavar="URI", envvar="MLFLOW_TRACKING_URI",
                     help="The MLflow tracking server or store: http(s)://HOST:PORT, "
                          "sqlite:///mlflow.db, ... (default: MLFLOW_TRACKING_URI)."),
    ],
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", metavar="NAME", show_default=False,
                     help="Import only this experiment (default: every experiment)."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="PROJECT", show_default=False,
                     help="Put every run in this project (default: a project per "
                          "experiment, of the same name)."),
    ] = None,
) -> None:
    """Import MLflow runs: params, metrics with full history, tags and artifacts.

    One tympan run per MLflow run; importing again adds only what is new."""
    from tympan.integrations.importers.mlflow import import_runs
    from tympan.track.stores import shared_transport

    transport = shared_transport(options(ctx).store)
    _report(import_runs(transport, tracking_uri, experiment, project))


def _report(results: Iterable[Imported]) -> None:
    count = 0
    for result in results:
        count += 1
        what = "imported" if result.created else ("updated" if result.points else "unchanged")
        parts = [f"{result.points} new points in {result.keys} metrics"]
        for label, n in (("audio clips", result.audio), ("images/tables", result.media),
                         ("files", result.files)):
            if n:
                parts.append(f"{n} {label}")
        typer.echo(f"{what} {result.run_id} {result.name!r} ({result.project}): "
                   f"{', '.join(parts)}")
        if result.skipped:
            skipped = ", ".join(f"{what} x{n}" for what, n in sorted(result.skipped.items()))
            typer.echo(f"  skipped (no tympan record for these yet): {skipped}", err=True)
    typer.echo(f"{count} run{'' if count == 1 else 's'} read", err=True)
