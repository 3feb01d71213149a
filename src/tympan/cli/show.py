"""``tympan show RUN``: everything stored about one run."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tympan.cli import render
from tympan.cli.context import opened_source
from tympan.config import flatten

if TYPE_CHECKING:
    from rich.panel import Panel
    from rich.table import Table

    from tympan.records.record import RunRecord


def show_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run id, unique id prefix or name.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print everything as one JSON object.")
    ] = False,
) -> None:
    """Show one run: overview, config, environment, metrics, artifacts, audio, images, tables
    and error."""
    with opened_source(ctx) as source:  # open while the probe's panels read artifacts
        print_run(source.run(run), as_json)


def print_run(record: RunRecord, as_json: bool) -> None:
    from tympan.records.export import run_fields, summary_fields

    environment = record.environment()
    artifacts = record.artifacts()
    audio = record.audio_samples()
    images = record.images()
    tables = record.tables()
    if as_json:
        render.print_json({
            "run": run_fields(record),
            "summary": summary_fields(record.summary),
            "environment": environment,
            "artifacts": [
                {"path": a.path, "size": a.size, "media_type": a.media_type, "sha256": a.sha256}
                for a in artifacts
            ],
            "audio_samples": [
                {"key": s.key, "step": s.step, "duration": s.duration,
                 "sample_rate": s.sample_rate, "channels": s.channels, "frames": s.frames,
                 "caption": s.caption, "peak": s.peak, "path": s.path, "sha256": s.sha256}
                for s in audio
            ],
            "images": [{"key": i.key, "step": i.step, "caption": i.caption, **i.info,
                        "path": i.path, "sha256": i.sha256} for i in images],
            "tables": [{"key": t.key, "step": t.step, "caption": t.caption, **t.info,
                        "path": t.path, "sha256": t.sha256} for t in tables],
        })
        return
    out = render.console()
    out.print(render.panel(overview(record), f"run {record.id}"))
    out.print(config_panel(record))
    out.print(environment_panel(environment))
    out.print(metrics_panel(record))
    if artifacts:
        table = render.table("path", "size", "media type", "sha256", right=["size"])
        for a in artifacts:
            table.add_row(render.text(a.path), render.size(a.size), render.text(a.media_type),
                          a.sha256[:12])
        out.print(render.panel(table, "artifacts"))
    if audio:
        table = render.table("key", "step", "duration", "sample rate", "channels", "caption",
                             right=["step", "duration", "sample rate", "channels"])
        for s in audio:
            table.add_row(render.text(s.key), str(s.step), f"{s.duration:.2f}s",
                          f"{s.sample_rate} Hz", str(s.channels), render.text(s.caption))
        out.print(render.panel(table, "audio samples"))
    for renderable in media_panels(images, tables):
        out.print(renderable)
    for renderable in probe_panels(record, artifacts):
        out.print(renderable)
    if record.error:
        out.print(render.panel(render.text(record.error.rstrip()), "error", style="red"))


def media_panels(images: list[Any], tables: list[Any]) -> list[Panel]:
    """The run's logged images and tables, one line each."""
    panels = []
    if images:
        table = render.table("key", "step", "size", "caption", right=["step"])
        for i in images:
            size = f"{i.info['width']}x{i.info['height']} {i.info['mode']}"
            table.add_row(render.text(i.key), str(i.step), size, render.text(i.caption))
        panels.append(render.panel(table, "images"))
    if tables:
        table = render.table("key", "step", "rows", "columns", "caption", right=["step", "rows"])
        for t in tables:
            table.add_row(render.text(t.key), str(t.step), str(t.info["rows"]),
                          render.text(", ".join(t.info["columns"])), render.text(t.caption))
        panels.append(render.panel(table, "tables"))
    return panels


def probe_panels(record: RunRecord, artifacts: list[Any]) -> list[Panel]:
    """What the probe or ``tympan probe`` recorded on this run: anomaly reports, drift,
    health events, a reference profile."""
    if not any(a.path.startswith("probe/") for a in artifacts):
        return []
    from rich.console import Group

    from tympan.cli.probe import anomaly_renderables, drift_table
    from tympan.records.probe import EVENTS, probe_data

    data = probe_data(record, children=False)
    panels = [render.panel(Group(*anomaly_renderables(report, show=5)), "probe: anomaly report")
              for report in data.anomaly]
    panels += [render.panel(drift_table(report), "probe: drift") for report in data.drift]
    if any(a.path == EVENTS for a in artifacts):
        table = render.table("step", "layer", "rule", "value", "message", right=["step"])
        for e in data.events:
            table.add_row(str(e.get("step")), render.text(e.get("layer")),
                          render.text(e.get("rule")), render.number(e.get("value")),
                          render.text(e.get("message")))
        body: Any = table if data.events else render.text("no health events fired", style="dim")
        panels.append(render.panel(body, "probe: health events"))
    if data.profile:
        panels.append(render.panel(render.text("probe/profile.npz: score inputs against it with "
                                        f"`tympan probe score RUN --profile {record.id}`"),
                                   "probe: reference profile"))
    return panels


def overview(record: RunRecord) -> Table:
    return render.key_value_table([
        ("id", record.id),
        ("name", record.name),
        ("project", record.project),
        ("status", render.status(record.status)),
        ("started", render.local_time(record.started_at, seconds=True)),
        ("ended", render.local_time(record.ended_at, seconds=True)),
        ("duration", render.duration(record.duration)),
        ("host", record.host),
        ("pid", record.pid),
        ("seed", record.seed),
        ("tags", ", ".join(record.tags or []) or None),
        ("note", record.note or None),
        ("parent", record.parent_id),
        ("study", record.study_id),
    ])


def config_panel(record: RunRecord) -> Panel:
    flat = flatten(record.config or {})
    body: Any = (render.key_value_table(sorted(flat.items())) if flat
                 else render.text("no config", style="dim"))
    return render.panel(body, "config")


def environment_panel(environment: dict[str, Any] | None) -> Panel:
    if environment is None:
        return render.panel(render.text("not recorded", style="dim"), "environment")
    from tympan.records.compare import environment_facts

    facts = environment_facts(environment)
    git = None
    if facts["git.commit"] is not None or facts["git.branch"] is not None:
        dirty = {True: "dirty", False: "clean", None: "state unknown"}[facts["git.dirty"]]
        git = f"{facts['git.commit'] or 'no commit'} on {facts['git.branch'] or 'detached HEAD'}"
        git += f", {dirty}"
        if facts["git.diff_lines"]:
            git += f" ({facts['git.diff_lines']} diff lines)"
        if facts["git.untracked"]:
            git += f", {facts['git.untracked']} untracked files"
    gpus = facts["gpu"]
    packages = environment.get("packages")
    argv = facts["command.argv"]
    rows = [
        ("git", git),
        ("python", facts["python.version"]),
        ("os", facts["os"]),
        ("cpu", facts["cpu"]),
        ("gpu", None if gpus is None else (", ".join(map(str, gpus)) or "none")),
        ("command", shlex.join(argv) if isinstance(argv, list) else None),
        ("packages", None if packages is None else f"{len(packages)} installed"),
    ]
    return render.panel(render.key_value_table(rows), "environment")


def metrics_panel(record: RunRecord) -> Panel:
    if not record.summary:
        return render.panel(render.text("no metrics", style="dim"), "metrics")
    table = render.table("key", "last", "min (step)", "max (step)", "count", "NaN", "Inf",
                         right=["last", "min (step)", "max (step)", "count", "NaN", "Inf"])
    for key, s in sorted(record.summary.items()):
        table.add_row(render.text(key), render.number(s.last), render.with_step(s.min, s.min_step),
                      render.with_step(s.max, s.max_step), str(s.count), str(s.nan_count),
                      str(s.inf_count))
    return render.panel(table, "metrics")
