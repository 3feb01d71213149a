"""``tympan study``: a study's trials (status, runs, errors) and its current verdicts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from tympan.cli.context import StudyProjectOpt, opened_studies
from tympan.cli.render import (
    console,
    duration,
    key_value_table,
    number,
    panel,
    print_json,
    status,
    table,
    text,
)

VERDICT_STYLES = {"improves": "bold green", "hurts": "bold red"}


def study_command(
    ctx: typer.Context,
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name or id.")],
    project: StudyProjectOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead.")] = False,
) -> None:
    """Show a study: its trials with their status and runs, then the verdicts so far."""
    from tympan.study.analysis import analyse
    from tympan.study.records import load_stored_study

    with opened_studies(ctx) as studies:
        stored = load_stored_study(studies, study, project)
        analysis = analyse(stored)
        if as_json:
            print_json(study_json(stored, analysis))
            return
        out = console()
        spec = stored.spec
        factors = "; ".join(f"{n}: {', '.join(f.level_names)} (baseline {f.baseline_name})"
                            for n, f in spec.factors.items())
        out.print(panel(key_value_table([
            ("study", f"{stored.name} ({stored.id})"), ("project", stored.project),
            ("file", stored.path), ("entry", spec.recipe or " ".join(spec.command or [])),
            ("design", spec.design), ("factors", factors),
            ("seeds", ", ".join(map(str, spec.seed_list))),
            ("runner", f"pid {stored.runner[1]} on {stored.runner[0]}" if stored.runner
             else "none"),
        ]), "study"))
        out.print(trials_table(analysis))
        for note in analysis.notes:
            out.print(text(f"note: {note}", style="dim"))
        print_verdicts(analysis)


def trials_table(analysis: Any) -> Any:
    from tympan.study.records import first_line

    keys = [m.key for m in analysis.spec.metrics]
    out = table("arm", "seed", "status", "run", "tries", "time", *keys, "error",
                title="trials", right=("seed", "tries", "time", *keys),
                no_wrap=("run", "status"))
    for result in analysis.trials:
        t = result.trial
        seconds = (t.ended_at - t.started_at) if t.ended_at and t.started_at else None
        out.add_row(text(t.arm), str(t.seed), status(t.status), text(t.run_id or "-"),
                    str(t.attempts), duration(seconds),
                    *(number(result.values[k]) for k in keys),
                    text(first_line(t.error), style="red"))
    return out


def verdicts_table(analysis: Any) -> Any:
    """The report's verdict table (the same columns and wording), for the terminal."""
    from tympan.study.report import NUMERIC_COLUMNS, VERDICT_COLUMNS, verdict_cells

    out = table(*VERDICT_COLUMNS, title=f"verdicts: {analysis.name} ({analysis.study_id})",
                right=NUMERIC_COLUMNS)
    for c in analysis.comparisons:
        cells = verdict_cells(c)
        verdict = text(c.verdict, style=VERDICT_STYLES.get(c.verdict, "dim"))
        out.add_row(*(text(cell) for cell in cells[:7]), verdict, cells[8])
    return out


def print_verdicts(analysis: Any) -> None:
    """The warnings (a metric no trial logged), then the verdicts."""
    out = console()
    for warning in analysis.warnings:
        out.print(text(f"warning: {warning}", style="bold yellow"))
    if analysis.comparisons:
        out.print(verdicts_table(analysis))
    else:
        out.print(text("no comparisons yet: each needs 2 seeds where both arms finished",
                       style="dim"))


def study_json(stored: Any, analysis: Any) -> dict[str, Any]:
    return {
        "study": {"id": stored.id, "name": stored.name, "project": stored.project,
                  "file": stored.path, "spec": stored.spec.model_dump(mode="json")},
        "context": analysis.context,
        "trials": [{"arm": r.trial.arm, "levels": r.trial.levels, "seed": r.trial.seed,
                    "status": r.trial.status, "run_id": r.trial.run_id,
                    "run_name": r.run_name, "attempts": r.trial.attempts,
                    "values": r.values, "missing": r.missing, "error": r.trial.error}
                   for r in analysis.trials],
        "comparisons": [{"kind": c.kind, "factor": c.factor, "level": c.level,
                         "baseline": c.baseline, "metric": c.metric.key,
                         "direction": c.metric.direction, "effect": c.effect.estimate,
                         "low": c.effect.low, "high": c.effect.high,
                         "p_value": c.effect.p_value, "p_adjusted": c.p_adjusted,
                         "prob_improvement": c.effect.prob_improvement, "n": c.effect.n,
                         "interval": c.effect.interval, "test": c.effect.test,
                         "resampled": c.effect.method,
                         "verdict": c.verdict, "seeds_needed": c.seeds_needed,
                         "seeds_total": c.seeds_total,
                         "dropped": [asdict(d) for d in c.dropped]}
                        for c in analysis.comparisons],
        "notes": analysis.notes,
        "warnings": analysis.warnings,
    }
