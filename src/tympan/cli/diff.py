"""``tympan diff RUN_A RUN_B``: what differs between two runs (logic in records/compare.py)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tympan.cli import render
from tympan.cli.context import opened_source

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from tympan.records.compare import ConfigDiff, EnvironmentDiff, MetricsDiff, RunDiff



def diff_command(
    ctx: typer.Context,
    run_a: Annotated[
        str, typer.Argument(metavar="RUN_A", help="First run (A): id, prefix or name.")
    ],
    run_b: Annotated[
        str, typer.Argument(metavar="RUN_B", help="Second run (B): id, prefix or name.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the differences as one JSON object.")
    ] = False,
) -> None:
    """Compare two runs: config, environment (code, packages, hardware) and metrics."""
    from tympan.records.compare import diff_runs

    with opened_source(ctx) as source:
        a, b = source.run(run_a), source.run(run_b)
        result = diff_runs(a, b, a.environment(), b.environment())
    if as_json:
        render.print_json(result)
        return
    from rich.text import Text

    out = render.console()
    out.print(Text.assemble(("A ", "bold"), f"{result.a_id} ({result.a_name})   ",
                            ("B ", "bold"), f"{result.b_id} ({result.b_name})"))
    print_config(out, result.config)
    print_environment(out, result)
    print_metrics(out, result.metrics)


def _absent() -> Text:
    return render.text("(absent)", style="dim")


def _value(value: Any) -> Text:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return render.text(shlex.join(value))
    return render.text(value)


def print_config(out: Console, config: ConfigDiff) -> None:
    if config.same:
        out.print(f"config: identical ({config.unchanged} keys)")
        return
    table = render.table("key", "A", "B", title="config")
    for change in config.changed:
        table.add_row(render.text(change.key), _value(change.a), _value(change.b))
    for key, value in config.only_in_a.items():
        table.add_row(render.text(key), _value(value), _absent())
    for key, value in config.only_in_b.items():
        table.add_row(render.text(key), _absent(), _value(value))
    out.print(table)
    if config.unchanged:
        out.print(render.text(f"{config.unchanged} config keys are the same", style="dim"))


def print_environment(out: Console, result: RunDiff) -> None:
    env: EnvironmentDiff = result.environment
    for recorded, run_id in ((env.recorded_a, result.a_id), (env.recorded_b, result.b_id)):
        if not recorded:
            out.print(f"environment: not recorded for run {run_id}")
    if not (env.recorded_a and env.recorded_b):
        return
    if env.same:
        out.print("environment: identical")
        return
    if env.changed:
        table = render.table("field", "A", "B", title="environment")
        for change in env.changed:
            table.add_row(change.key, _value(change.a), _value(change.b))
        out.print(table)
    if env.packages_added or env.packages_removed or env.packages_changed:
        table = render.table("package", "A", "B", title="packages")
        for change in env.packages_changed:
            table.add_row(render.text(change.key), render.text(change.a), render.text(change.b))
        for name, version in env.packages_removed.items():
            table.add_row(render.text(name), render.text(version), _absent())
        for name, version in env.packages_added.items():
            table.add_row(render.text(name), _absent(), render.text(version))
        out.print(table)


def print_metrics(out: Console, metrics: MetricsDiff) -> None:
    from tympan.records.compare import SUMMARY_STATS

    if metrics.both:
        table = render.table("metric", "stat", "A", "B", "delta", "relative", title="metrics",
                             right=["A", "B", "delta", "relative"])
        for metric in metrics.both:
            for i, stat in enumerate(SUMMARY_STATS):
                change = getattr(metric, stat)
                table.add_row(render.text(metric.key) if i == 0 else "", stat,
                              render.number(change.a), render.number(change.b),
                              render.signed(change.delta),
                              render.signed(change.relative, percent=True))
        out.print(table)
    if metrics.only_in_a:
        out.print(render.text("metrics only in A: " + ", ".join(metrics.only_in_a)))
    if metrics.only_in_b:
        out.print(render.text("metrics only in B: " + ", ".join(metrics.only_in_b)))
    if not (metrics.both or metrics.only_in_a or metrics.only_in_b):
        out.print("metrics: none in either run")
