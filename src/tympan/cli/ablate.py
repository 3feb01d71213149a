"""``tympan ablate``: run a study file's trials, with live progress, then print its verdicts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tympan.cli.context import options
from tympan.cli.render import console


def ablate_command(
    ctx: typer.Context,
    study_file: Annotated[Path, typer.Argument(metavar="STUDY.yaml",
                                               help="The study file to run.")],
    workers: Annotated[int | None, typer.Option(
        "--workers", metavar="N", help="Trials at once (local default 1; ray default: the "
                                       "cluster's CPUs).")] = None,
    executor: Annotated[str, typer.Option(
        "--executor", metavar="local|ray", help="Where trials run.")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", metavar="ADDRESS", help="Ray cluster to join, e.g. 127.0.0.1:6379 "
                                             "(default: start a local Ray).")] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Run failed trials again.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Accept a study file that changed since its trials ran.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="No progress display; one line per finished trial.")] = False,
) -> None:
    """Run the trials of STUDY.yaml that are not done yet, then print the verdicts; exits
    non-zero when a trial failed."""
    from tympan.cli.app import print_error
    from tympan.cli.study import print_verdicts
    from tympan.study.analysis import analyse
    from tympan.study.findings import record_findings
    from tympan.study.records import first_line
    from tympan.study.runner import run_study
    from tympan.study.spec import load_study
    from tympan.study.spooled import is_spooled

    study = load_study(study_file)
    with StudyProgress(study.spec.name, live=not quiet) as progress:
        stored = run_study(study, store=options(ctx).store, executor=executor, workers=workers,
                           address=address, retry_failed=retry_failed, force=force,
                           on_progress=progress.update)
    analysis = analyse(stored)
    print_verdicts(analysis)
    record_findings(stored.studies, analysis)
    typer.echo(f"report: tympan report {stored.name}")
    trials = stored.current_trials()
    spooled = [t for t in trials if is_spooled(t.status, t.error)]
    if spooled:
        print_error(f"{len(spooled)} of {len(trials)} trials are spooled: their runs wait on "
                    "disk, pending sync (e.g. " + first_line(spooled[0].error) + ")")
    failed = [t for t in trials if t.status in ("failed", "crashed", "timed_out")
              and t not in spooled]
    if failed:
        t = failed[0]
        example = f"{t.arm} seed={t.seed}: {first_line(t.error)}"
        print_error(f"{len(failed)} of {len(trials)} trials failed "
                    f"({example if len(failed) == 1 else 'e.g. ' + example}); see `tympan "
                    f"study {stored.name}`, then run again with --retry-failed")
        raise typer.Exit(1)
    if spooled:
        raise typer.Exit(1)  # not done yet: `tympan sync`, then `tympan ablate` counts them


class StudyProgress:
    """A rich progress bar (done / running / failed, ETA) on a terminal; otherwise, or with
    --quiet, one line per trial that ends."""

    def __init__(self, name: str, live: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.name = name
        self.live = live and sys.stdout.isatty()
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[states]}"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=console(), disable=not self.live)
        self.task: Any = None
        self.ended = 0  # trials this invocation ran to an end

    def __enter__(self) -> StudyProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def update(self, p: Any) -> None:  # a tympan.study.runner.Progress
        from tympan.study.records import first_line
        from tympan.study.spooled import is_spooled

        states = f"running {p.running} · failed {p.failed}"
        if p.skipped:
            states += f" · kept {p.skipped}"
        if self.task is None:
            self.task = self.bar.add_task(self.name, total=p.total, states=states)
            if not self.live:
                typer.echo(f"study {self.name}: {p.total} trials, {p.skipped} already "
                           f"finished, {p.to_run} to run")
        # Kept trials count as done for the bar but not for the ETA's rate.
        self.bar.update(self.task, completed=p.done + p.failed, states=states)
        ended = ("finished", "failed", "timed_out", "crashed")
        if not self.live and p.event in ended and p.trial is not None:
            self.ended += 1
            t = p.trial
            detail = "" if p.event == "finished" else f": {first_line(t.error)}"
            event = "spooled" if is_spooled(t.status, t.error) else p.event
            typer.echo(f"[{self.ended}/{p.to_run}] {t.arm} seed={t.seed} {event} "
                       f"(run {t.run_id or '-'}){detail}")
