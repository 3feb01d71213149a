"""The study report: context, forest plot, verdicts and trials, as Markdown and HTML.

Pure functions of a :class:`StudyAnalysis`. The HTML page is standalone: inline CSS and an
inline SVG, no scripts, fonts or anything else fetched from elsewhere; every string that
came from the user (names, levels, errors) is escaped. The Markdown page has the same tables
and shows the forest plot from ``forest.svg`` beside it. :func:`make_report` is what
``tympan report`` calls: it analyses a stored study, writes the report and records the
study's findings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path

from tympan.store import Store
from tympan.study import stats
from tympan.study.analysis import Comparison, StudyAnalysis, TrialResult, analyse
from tympan.study.forest import forest_svg, number, verdict_colour
from tympan.study.records import first_line, load_stored_study
from tympan.study.source import StudySource

__all__ = ["forest_svg", "make_report", "render_html", "render_markdown", "write_report"]

MAX_SEEDS = 64  # stats.seeds_needed looks no further than this many seeds
KIND_TITLES = {"level": "Verdicts", "main": "Main effects", "interaction": "Interactions"}
INTERVALS = {
    "bootstrap-t": "studentized bootstrap (bootstrap-t) intervals from resampled seeds (too "
                   "few seeds for a bounded sign-flip interval, or analysis.test: t-test)",
    "student-t": "Student t intervals (too few seeds for bootstrap-t), which assume normal "
                 "noise",
    "sign-flip+bootstrap-t": "intervals that invert the sign-flip test, widened where the "
                             "studentized bootstrap (bootstrap-t) interval reaches further",
    "percentile": "percentile bootstrap intervals, resampling seeds and test utterances",
    "degenerate": "zero-width intervals where every seed gave the same difference",
}
TESTS = {
    "sign-flip": "exact sign-flip randomisation tests of the seed-paired differences (no "
                 "normality assumed; with n seeds the smallest p is 2/2^n: 0.25 with 3 seeds, "
                 "so 6 or more are needed to reach 0.05)",
    "t-test": "paired t-tests (analysis.test: t-test; exact under normal noise, too liberal "
              "under skewed noise)",
}
VERDICT_COLUMNS = ["comparison", "baseline", "metric", "seeds", "effect [CI]", "Holm p",
                   "P(improvement)", "verdict", "seeds to decide"]
NUMERIC_COLUMNS = ("seeds", "effect [CI]", "Holm p", "P(improvement)")


# -- the content, as plain strings -----------------------------------------------------------

def context_rows(analysis: StudyAnalysis) -> list[tuple[str, str]]:
    ctx = analysis.context
    overrides = ", ".join(f"{k}={v}" for k, v in (ctx.get("overrides") or {}).items())
    return [
        ("study", f"{analysis.name} ({analysis.study_id})"),
        ("project", analysis.project),
        ("recipe", ctx.get("recipe") or "-"),
        ("design", ctx.get("design") or "-"),
        ("seeds", ", ".join(map(str, ctx.get("seeds") or [])) or "-"),
        ("fixed overrides", overrides or "none"),
        ("baselines", ", ".join(f"{k}={v}" for k, v in (ctx.get("baselines") or {}).items())),
        ("base config hash", ctx.get("base_config_hash") or "-"),
        ("data manifest hash", ctx.get("data_manifest_hash") or "not recorded"),
        ("git commit", ctx.get("git_commit") or "not recorded"),
        ("tympan version", ctx.get("tympan_version") or "-"),
        ("when run", when_run(analysis.trials)),
        ("trials", f"{analysis.finished} of {len(analysis.trials)} finished"),
    ]


def when_run(trials: Sequence[TrialResult]) -> str:
    starts = [t.trial.started_at for t in trials if t.trial.started_at is not None]
    ends = [t.trial.ended_at for t in trials if t.trial.ended_at is not None]
    if not starts:
        return "not run yet"
    fmt = "%Y-%m-%d %H:%M"
    first = datetime.fromtimestamp(min(starts)).strftime(fmt)
    return f"{first} to {datetime.fromtimestamp(max(ends)).strftime(fmt)}" if ends else first


def p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def effect_text(c: Comparison) -> str:
    e = c.effect
    return f"{number(e.estimate, True)} [{number(e.low)}, {number(e.high)}]"


def seeds_text(c: Comparison) -> str:
    """How many more seeds would likely decide an undecided comparison."""
    if c.decided:
        return "—"
    if c.seeds_needed is None:
        return f"> {MAX_SEEDS} seeds in all"
    more = c.seeds_needed - c.effect.n
    return f"≥ {more} more seeds would likely decide it ({c.seeds_needed} in all)"


def verdict_cells(c: Comparison) -> list[str]:
    """The cells of VERDICT_COLUMNS; ``seeds`` is the seeds used (``2 of 3`` when some were
    dropped: the notes say which and why)."""
    return [c.label, c.baseline, c.metric.key, c.seeds_text, effect_text(c),
            p_text(c.p_adjusted), f"{c.effect.prob_improvement:.0%}", c.verdict, seeds_text(c)]


def comparison_tables(analysis: StudyAnalysis) -> list[tuple[str, list[Comparison]]]:
    """(title, comparisons) per kind: one table for one-at-a-time designs; main effects and
    interactions apart for full factorial ones."""
    out = []
    for kind, title in KIND_TITLES.items():
        rows = [c for c in analysis.comparisons if c.kind == kind]
        if rows:
            out.append((title, rows))
    return out


def trial_columns(analysis: StudyAnalysis) -> list[str]:
    return ["arm", "seed", "status", "run", *(m.key for m in analysis.spec.metrics), "error"]


def sorted_trials(analysis: StudyAnalysis) -> list[TrialResult]:
    return sorted(analysis.trials, key=lambda t: (t.trial.arm != "baseline", t.trial.arm,
                                                  t.trial.seed))


def value_text(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.6g}"


def reading_guide(analysis: StudyAnalysis) -> list[str]:
    """The "how to read this" paragraphs."""
    spec = analysis.spec.analysis
    kinds = sorted({c.effect.interval for c in analysis.comparisons})
    methods = "; ".join(INTERVALS.get(k, k) for k in kinds) or "none (no comparisons)"
    n_boot = sorted({c.effect.n_boot for c in analysis.comparisons})
    m = len(analysis.comparisons)
    return [
        "Each effect is the mean of the seed-paired differences treatment − baseline, in the "
        "metric's own units: every arm ran with the same seeds, and each seed's treatment "
        "result is compared with the baseline's result for that seed. In the forest plot a "
        "point is the effect, the bar its interval and the dashed line zero; the better side "
        "of zero is labelled. The seeds column counts the seeds a comparison used: a seed "
        "whose trial failed, timed out, or gave a missing, NaN or infinite metric in either "
        "arm is left out, and the notes say which and why.",
        f"Intervals are {spec.confidence:.0%} confidence intervals: {methods}"
        + (f" ({', '.join(map(str, n_boot))} resamples)."
           if {"bootstrap-t", "percentile"} & set(kinds) else ".")
        + f" p-values are two-sided {TESTS.get(analysis.spec.analysis.test, '')}, adjusted "
        f"with Holm's step-down correction over all {m} comparisons of the study (every "
        "comparison of every metric is one hypothesis).",
        f"A verdict is decided (improves or hurts) only when the Holm-adjusted p is below "
        f"α = {spec.alpha:g} and the interval excludes zero on the side of the estimate; "
        "otherwise it is \"no detectable effect\". P(improvement) is the share of bootstrap "
        "means on the better side. For an undecided comparison, the seeds column says how "
        "many more seeds would likely (80% power) decide it at its Holm threshold. The "
        "methods and the simulations that check them are in docs/statistics.md.",
    ]


def verdict_counts(analysis: StudyAnalysis) -> str:
    counts = {v: sum(c.verdict == v for c in analysis.comparisons)
              for v in (stats.IMPROVES, stats.HURTS, stats.NO_EFFECT)}
    return (f"{len(analysis.comparisons)} comparisons: {counts[stats.IMPROVES]} improve, "
            f"{counts[stats.HURTS]} hurt, {counts[stats.NO_EFFECT]} undecided")


# -- Markdown --------------------------------------------------------------------------------

def _md(text: object) -> str:
    """A table cell or list item: pipes and backslashes escaped, and ``<``, ``>`` and ``&``
    as entities, so a level named ``<script>`` is shown, never run, by a Markdown viewer."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]],
              right: Sequence[str] = ()) -> list[str]:
    head = "| " + " | ".join(_md(c) for c in columns) + " |"
    rule = "|" + "|".join("---:" if c in right else "---" for c in columns) + "|"
    return [head, rule, *("| " + " | ".join(_md(v) for v in row) + " |" for row in rows)]


def render_markdown(analysis: StudyAnalysis, forest: str = "forest.svg") -> str:
    """The report as Markdown; the forest plot is the image ``forest`` (written beside it)."""
    lines = [f"# Study {_md(analysis.name)}", ""]
    if analysis.spec.description:
        lines += [_md(analysis.spec.description.strip()), ""]
    lines += [verdict_counts(analysis) + ".", ""]
    if analysis.warnings:
        lines += ["## Warnings", "", *(f"- ⚠ {_md(w)}" for w in analysis.warnings), ""]
    lines += ["## Context", ""]
    lines += _md_table(["", ""], context_rows(analysis))
    lines += ["", "## Forest plot", "", f"![forest plot]({forest})", ""]
    for title, rows in comparison_tables(analysis):
        lines += [f"## {title}", ""]
        lines += _md_table(VERDICT_COLUMNS, [verdict_cells(c) for c in rows],
                           right=NUMERIC_COLUMNS)
        lines.append("")
    if not analysis.comparisons:
        lines += ["## Verdicts", "", "No comparisons yet.", ""]
    lines += ["## Trials", ""]
    lines += _md_table(trial_columns(analysis), [_trial_cells(t) for t in sorted_trials(analysis)],
                       right=["seed", *(m.key for m in analysis.spec.metrics)])
    if analysis.notes:
        lines += ["", "## Notes", "", *(f"- {_md(n)}" for n in analysis.notes)]
    lines += ["", "## How to read this", ""]
    for paragraph in reading_guide(analysis):
        lines += [paragraph, ""]
    return "\n".join(lines)


def _trial_cells(t: TrialResult) -> list[str]:
    run = t.trial.run_id or "—"
    if t.trial.run_id and t.run_name:
        run = f"{t.trial.run_id} ({t.run_name})"
    values = [value_text(t.values.get(m, math.nan)) for m in t.values]
    return [t.trial.arm, str(t.trial.seed), t.trial.status, run, *values,
            first_line(t.trial.error) or ""]


# -- HTML ------------------------------------------------------------------------------------

CSS = """
:root { --ink:#1f2328; --muted:#59636e; --line:#d1d9e0; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; background:#fff; color:var(--ink);
  font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1120px; margin:0 auto; padding:40px 32px 64px; }
.eyebrow { margin:0; color:var(--muted); font-size:13px; letter-spacing:.06em;
  text-transform:uppercase; }
h1 { margin:4px 0 8px; font-size:30px; line-height:1.2; }
h2 { margin:40px 0 12px; padding-bottom:6px; font-size:20px; border-bottom:1px solid var(--line); }
.lede { margin:0 0 8px; font-size:16px; color:var(--ink); max-width:80ch; }
.summary { margin:0; color:var(--muted); }
dl.facts { display:grid; grid-template-columns:max-content 1fr max-content 1fr; gap:6px 20px;
  margin:0; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; overflow-wrap:anywhere; }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
table { border-collapse:collapse; width:100%; font-size:14px; }
th, td { padding:7px 10px; border-bottom:1px solid var(--line); text-align:left;
  vertical-align:top; }
th { font-weight:600; background:var(--soft); white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:hover { background:#fbfcfd; }
.badge { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12.5px;
  font-weight:600; color:#fff; white-space:nowrap; }
.status-failed, .status-crashed { color:#cf222e; font-weight:600; }
.error { color:#cf222e; font-size:13px; }
.figure { overflow-x:auto; padding:12px 0; }
.legend { display:flex; gap:18px; color:var(--muted); font-size:13px; margin:4px 0 0; }
.legend span::before { content:""; display:inline-block; width:10px; height:10px;
  border-radius:50%; margin-right:6px; background:var(--dot); }
.muted { color:var(--muted); }
.warnings { border-left:4px solid #bf8700; background:#fff8c5; padding:4px 16px; margin-top:24px; }
.warnings h2 { margin-top:12px; border:0; }
a { color:#0969da; text-decoration:none; } a:hover { text-decoration:underline; }
footer { margin-top:48px; color:var(--muted); font-size:13px; }
"""


def render_html(analysis: StudyAnalysis, link_base: str | None = None) -> str:
    """The report as one standalone HTML page; run ids link to ``link_base + id`` if given."""
    e = escape
    body = ['<header><p class="eyebrow">tympan study report</p>',
            f"<h1>{e(analysis.name)}</h1>"]
    if analysis.spec.description:
        body.append(f'<p class="lede">{e(analysis.spec.description.strip())}</p>')
    body.append(f'<p class="summary">{e(verdict_counts(analysis))} · '
                f"{analysis.finished} of {len(analysis.trials)} trials finished</p></header>")
    if analysis.warnings:
        items = "".join(f"<li>{e(w)}</li>" for w in analysis.warnings)
        body.append(f'<section class="warnings"><h2>Warnings</h2><ul>{items}</ul></section>')
    facts = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in context_rows(analysis))
    body.append(f'<section><h2>Context</h2><dl class="facts">{facts}</dl></section>')
    legend = "".join(f'<span style="--dot:{verdict_colour(v)}">{label}</span>'
                     for v, label in ((stats.IMPROVES, "improves"), (stats.HURTS, "hurts"),
                                      (stats.NO_EFFECT, "no detectable effect")))
    # Inline SVG needs no namespace declaration: the page mentions no http address at all.
    svg = forest_svg(analysis).replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
    body.append(f'<section><h2>Forest plot</h2><div class="figure">{svg}'
                f'</div><div class="legend">{legend}</div></section>')
    for title, rows in comparison_tables(analysis):
        body.append(f"<section><h2>{e(title)}</h2>{_verdict_table(rows)}</section>")
    if not analysis.comparisons:
        body.append('<section><h2>Verdicts</h2><p class="muted">No comparisons yet.</p>'
                    "</section>")
    body.append(f"<section><h2>Trials</h2>{_trial_table(analysis, link_base)}</section>")
    if analysis.notes:
        notes = "".join(f"<li>{e(n)}</li>" for n in analysis.notes)
        body.append(f"<section><h2>Notes</h2><ul>{notes}</ul></section>")
    guide = "".join(f"<p>{e(p)}</p>" for p in reading_guide(analysis))
    body.append(f"<section><h2>How to read this</h2>{guide}</section>")
    body.append(f"<footer>Study {e(analysis.study_id)} · tympan "
                f"{e(str(analysis.context.get('tympan_version', '')))}</footer>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Study {e(analysis.name)} · tympan</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def _verdict_table(rows: list[Comparison]) -> str:
    head = "".join(f'<th class="num">{c}</th>' if c in NUMERIC_COLUMNS
                   else f"<th>{escape(c)}</th>" for c in VERDICT_COLUMNS)
    out = []
    for c in rows:
        cells = verdict_cells(c)
        tds = [f"<td>{escape(v)}</td>" for v in cells[:3]]
        tds += [f'<td class="num">{escape(v)}</td>' for v in cells[3:7]]
        tds.append(f'<td><span class="badge" style="background:{verdict_colour(c.verdict)}">'
                   f"{escape(c.verdict)}</span></td>")
        tds.append(f'<td class="muted">{escape(cells[8])}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"


def _trial_table(analysis: StudyAnalysis, link_base: str | None) -> str:
    metrics = [m.key for m in analysis.spec.metrics]
    head = ("<th>arm</th><th class=\"num\">seed</th><th>status</th><th>run</th>"
            + "".join(f'<th class="num">{escape(k)}</th>' for k in metrics) + "<th>error</th>")
    out = []
    for t in sorted_trials(analysis):
        run_id = t.trial.run_id
        if run_id is None:
            run = '<span class="muted">—</span>'
        else:
            ident = f'<span class="mono">{escape(run_id)}</span>'
            if link_base:
                ident = f'<a href="{escape(link_base + run_id)}">{ident}</a>'
            run = ident + (f' <span class="muted">{escape(t.run_name)}</span>'
                           if t.run_name else "")
        values = "".join(f'<td class="num">{value_text(t.values.get(k, math.nan))}</td>'
                         for k in metrics)
        status = escape(t.trial.status)
        out.append(f"<tr><td>{escape(t.trial.arm)}</td><td class=\"num\">{t.trial.seed}</td>"
                   f'<td class="status-{status}">{status}</td><td>{run}</td>{values}'
                   f'<td class="error">{escape(first_line(t.trial.error))}</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"


# -- files -----------------------------------------------------------------------------------

def write_report(analysis: StudyAnalysis, out_dir: str | Path,
                 link_base: str | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``forest.svg`` and ``report.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "svg": out / "forest.svg",
             "html": out / "report.html"}
    paths["svg"].write_text(forest_svg(analysis) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(analysis), encoding="utf-8")
    paths["html"].write_text(render_html(analysis, link_base), encoding="utf-8")
    return paths


def make_report(where: Store | StudySource, study: str, out_dir: str | Path | None = None, *,
                project: str | None = None,
                link_base: str | None = None) -> tuple[StudyAnalysis, dict[str, Path]]:
    """Analyse a stored study, write its report (default ``reports/<study name>``) and
    record its findings where the study is stored."""
    from tympan.study.findings import record_findings

    analysis = analyse(load_stored_study(where, study, project))
    # Findings first: a server that refuses the token (read scope, 403) must leave no
    # report files behind that look like the command worked.
    record_findings(where, analysis)
    paths = write_report(analysis, out_dir if out_dir is not None
                         else Path("reports") / analysis.name, link_base)
    return analysis, paths
