"""The findings knowledge base: what studies found about each component, pooled across them.

``record_findings`` keeps one row per comparison of an analysed study (``tympan report``
calls it), replacing the study's earlier rows. Decided comparisons (improves / hurts) are
the findings proper; undecided ones are kept as evidence, since "no detectable effect in
three studies" is worth knowing too.

``pooled_findings`` groups the rows of every study by (component, level, baseline, metric)
and pools them:

- counts of studies where the level improves, hurts, or made no detectable difference;
- a pooled effect with its 95% interval from a random-effects meta-analysis (DerSimonian-
  Laird tau², the Hartung-Knapp-Sidik-Jonkman interval, each study's standard error read
  from its interval and pooled over the studies: :mod:`tympan.study.pooling`), and the
  heterogeneity I²;
- ``contradiction`` when one study says improves and another hurts.

A comparison stored the other way round in another study (``gru`` against baseline ``conv``
in one, ``conv`` against ``gru`` in another) pools with the first: its effect and interval
change sign, improves and hurts swap, and P(improvement) becomes 1 - P. The orientation
shown is the one most studies used (the oldest study's on a tie). Interactions are pooled
only with the same interaction the same way round.

``export_wiki`` writes the pooled evidence as Markdown pages, one per component.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tympan.store import Store
from tympan.study import stats
from tympan.study.analysis import StudyAnalysis
from tympan.study.pooling import interval_standard_error, pooled_standard_errors, random_effects
from tympan.study.source import StudySource, studies_of

FLIPPED_VERDICT = {stats.IMPROVES: stats.HURTS, stats.HURTS: stats.IMPROVES}


def record_findings(where: Store | StudySource, analysis: StudyAnalysis) -> int:
    """Replace the study's findings with one row per comparison (in a store opened here or
    through a team server); returns how many."""
    return studies_of(where).record_findings(analysis)


def finding_rows(analysis: StudyAnalysis) -> list[dict[str, Any]]:
    """The findings rows of an analysed study: one per comparison."""
    now = time.time()
    context = {**analysis.context, "confidence": analysis.spec.analysis.confidence,
               "alpha": analysis.spec.analysis.alpha}
    return [{
        "kind": c.kind, "component": c.factor, "level": c.level, "baseline": c.baseline,
        "metric": c.metric.key, "direction": c.metric.direction,
        "effect": c.effect.estimate, "low": c.effect.low, "high": c.effect.high,
        "p_value": c.effect.p_value, "p_adjusted": c.p_adjusted,
        "prob_improvement": c.effect.prob_improvement, "n": c.effect.n,
        "verdict": c.verdict, "context": context, "created_at": now,
    } for c in analysis.comparisons]


@dataclass(frozen=True)
class Evidence:
    """One study's comparison, in the orientation of the finding it pools into."""

    study_id: str
    study: str
    project: str
    kind: str
    effect: float
    low: float
    high: float
    p_adjusted: float
    prob_improvement: float
    n: int
    verdict: str
    flipped: bool  # stored the other way round (level and baseline swapped)
    confidence: float
    context: dict[str, Any]

    @property
    def standard_error(self) -> float:
        """The study's standard error, read back from its interval: half its width over the
        Student t quantile for ``n - 1`` degrees of freedom (exact for a Student t interval,
        the right scale for the others); over z with one seed (utterances resampled only)."""
        return interval_standard_error(self.low, self.high, self.n, self.confidence)


@dataclass(frozen=True)
class PooledFinding:
    """What every study says about one level against one baseline, on one metric."""

    component: str
    level: str
    baseline: str
    metric: str
    direction: str  # "lower" or "higher" is better
    evidence: list[Evidence]
    estimate: float  # pooled effect (random effects), metric units
    low: float  # its 95% interval (Hartung-Knapp-Sidik-Jonkman)
    high: float
    i_squared: float | None  # heterogeneity, 0..1; None with one study
    tau_squared: float  # between-study variance

    @property
    def studies(self) -> int:
        return len(self.evidence)

    @property
    def improves(self) -> int:
        return sum(e.verdict == stats.IMPROVES for e in self.evidence)

    @property
    def hurts(self) -> int:
        return sum(e.verdict == stats.HURTS for e in self.evidence)

    @property
    def undecided(self) -> int:
        return self.studies - self.improves - self.hurts

    @property
    def contradiction(self) -> bool:
        return self.improves > 0 and self.hurts > 0

    @property
    def label(self) -> str:
        return f"{self.component}={self.level} vs {self.baseline}"

    @property
    def pooled_verdict(self) -> str:
        """Which side of zero the pooled interval lies on, in the metric's terms."""
        if self.high < 0 or self.low > 0:
            lower = self.high < 0
            return stats.IMPROVES if lower == (self.direction == "lower") else stats.HURTS
        return stats.NO_EFFECT

    @property
    def contexts(self) -> dict[str, list[Any]]:
        """Where the evidence comes from: study names, recipes, data manifest hashes."""
        def distinct(key: str) -> list[Any]:
            return list(dict.fromkeys(e.context.get(key) for e in self.evidence))
        return {"studies": list(dict.fromkeys(e.study for e in self.evidence)),
                "recipes": distinct("recipe"),
                "data_manifest_hashes": distinct("data_manifest_hash")}

    @property
    def summary(self) -> str:
        """``enc=gru vs conv: better test/cer in 3 of 4 studies, worse in 1, ...``."""
        return (f"{self.label}: better {self.metric} in {self.improves} of {self.studies} "
                f"{'study' if self.studies == 1 else 'studies'}, worse in {self.hurts}, no "
                f"detectable effect in {self.undecided}; pooled effect "
                f"{self.estimate:+.3g} [{self.low:.3g}, {self.high:.3g}]")

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component, "level": self.level, "baseline": self.baseline,
            "metric": self.metric, "direction": self.direction, "studies": self.studies,
            "improves": self.improves, "hurts": self.hurts, "undecided": self.undecided,
            "estimate": self.estimate, "low": self.low, "high": self.high,
            "i_squared": self.i_squared, "tau_squared": self.tau_squared,
            "contradiction": self.contradiction, "pooled_verdict": self.pooled_verdict,
            "contexts": self.contexts,
            "evidence": [{**{k: getattr(e, k) for k in Evidence.__dataclass_fields__}}
                         for e in self.evidence],
        }


def pooled_findings(where: Store | StudySource, component: str | None = None,
                    metric: str | None = None, project: str | None = None
                    ) -> list[PooledFinding]:
    """Every (component, level, baseline, metric) with evidence, pooled across studies
    (``project``: only that project's studies), read from a store or a team server."""
    rows = studies_of(where).finding_rows(component=component, metric=metric, project=project)
    groups: dict[tuple, list[Any]] = {}
    for row in rows:
        pair = (row.level, row.baseline) if row.kind == "interaction" else tuple(
            sorted((row.level, row.baseline)))
        groups.setdefault((row.component, pair, row.metric, row.kind == "interaction"),
                          []).append(row)
    out = [_pool(group) for group in groups.values()]
    return sorted(out, key=lambda f: (f.component, f.metric, f.baseline, f.level))


def _pool(rows: list[Any]) -> PooledFinding:
    orientations: dict[tuple[str, str], int] = {}
    for row in rows:  # oldest study first: insertion order breaks ties
        orientations[(row.level, row.baseline)] = orientations.get((row.level, row.baseline),
                                                                   0) + 1
    level, baseline = max(orientations, key=lambda o: orientations[o])
    evidence = [_evidence(row, flipped=(row.level, row.baseline) != (level, baseline))
                for row in rows]
    errors = pooled_standard_errors([e.standard_error for e in evidence],
                                    [e.n for e in evidence])
    estimate, low, high, tau2, i2 = random_effects([e.effect for e in evidence], errors)
    if len(evidence) == 1:  # one study: its own interval, not a normal approximation of it
        estimate, low, high = evidence[0].effect, evidence[0].low, evidence[0].high
    return PooledFinding(rows[0].component, level, baseline, rows[0].metric, rows[0].direction,
                         evidence, estimate, low, high, i2, tau2)


def _evidence(row: Any, flipped: bool) -> Evidence:
    context = dict(row.context or {})
    effect, low, high = row.effect, row.low, row.high
    prob, verdict = row.prob_improvement, row.verdict
    if flipped:
        effect, low, high = -effect, -high, -low
        prob, verdict = 1.0 - prob, FLIPPED_VERDICT.get(verdict, verdict)
    return Evidence(row.study_id, row.study_name, row.project, row.kind, effect, low, high,
                    row.p_adjusted, prob, row.n, verdict, flipped,
                    float(context.get("confidence", 0.95)), context)


# -- the wiki --------------------------------------------------------------------------------

def export_wiki(where: Store | StudySource, out_dir: str | Path,
                link_base: str | None = None) -> list[Path]:
    """One Markdown page per component (``<component>.md``), one per project
    (``project-<name>.md``) and ``index.md``; returns the paths, index last. Study ids link
    to ``link_base + id`` if given, else to the study's context at the foot of the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_component: dict[str, list[PooledFinding]] = {}
    for finding in pooled_findings(where):
        by_component.setdefault(finding.component, []).append(finding)
    paths, index = [], ["# Findings", "", "What tympan studies found, by component. Each "
                        "page pools every study's evidence (see `tympan findings`): a "
                        "random-effects meta-analysis with the Hartung-Knapp-Sidik-Jonkman "
                        "95% interval, which holds its level with as few as 2 studies of 3 "
                        "seeds (tympan's docs/statistics.md).", ""]
    used: set[str] = set()
    pages: dict[str, str] = {}
    for component, found in sorted(by_component.items()):
        name = pages[component] = _page_name(component, used)
        path = out / name
        path.write_text(_component_page(component, found, link_base), encoding="utf-8")
        paths.append(path)
        decided = sum(f.improves + f.hurts > 0 for f in found)
        clash = sum(f.contradiction for f in found)
        index.append(f"- [{_md(component)}]({name}): {len(found)} comparison"
                     f"{'s' if len(found) != 1 else ''}, {decided} with a decided verdict"
                     + (f", ⚠ {clash} contradicted" if clash else ""))
    if not by_component:
        index.append("No findings yet: run `tympan report STUDY` after a study.")
    projects = sorted({e.project for found in by_component.values() for f in found
                       for e in f.evidence})
    if projects:
        index += ["", "## By project", "", "What each project's own studies found (pooled "
                  "over that project's studies only).", ""]
    for project in projects:
        name = _page_name(f"project-{project}", used)
        path = out / name
        found = pooled_findings(where, project=project)
        path.write_text(_project_page(project, found, pages), encoding="utf-8")
        paths.append(path)
        index.append(f"- [{_md(project)}]({name}): {len(found)} comparison"
                     f"{'s' if len(found) != 1 else ''} in "
                     f"{len({f.component for f in found})} components")
    index_path = out / "index.md"
    index_path.write_text("\n".join(index) + "\n", encoding="utf-8")
    return [*paths, index_path]


def _project_page(project: str, found: list[PooledFinding], pages: dict[str, str]) -> str:
    """One project's findings at a glance: a row per comparison, pooled over the project's
    own studies, each component linking to its page (which pools every project's)."""
    lines = [f"# {_md(project)}", "", f"What the studies of project {_md(project)} found, "
             "pooled over those studies only. A component's own page pools every project's "
             "studies and shows each one's context.", "",
             "| component | comparison | metric | studies | improves | hurts | no detectable "
             "effect | pooled effect [95% CI] | verdict |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for f in sorted(found, key=lambda f: (f.component, f.level, f.metric)):
        page = pages.get(f.component)
        component = f"[{_md(f.component)}]({page})" if page else _md(f.component)
        lines.append(f"| {component} | {_md(f.level)} vs {_md(f.baseline)} | {_md(f.metric)} "
                     f"({f.direction} is better) | {f.studies} | {f.improves} | {f.hurts} | "
                     f"{f.undecided} | {f.estimate:+.3g} [{f.low:.3g}, {f.high:.3g}] | "
                     f"{_md(f.pooled_verdict)}"
                     + (" ⚠ contradicted" if f.contradiction else "") + " |")
    return "\n".join(lines) + "\n"


def _page_name(component: str, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", component).strip("._") or "component"
    name, i = f"{stem}.md", 2
    while name.lower() in used or name.lower() == "index.md":
        name, i = f"{stem}-{i}.md", i + 1
    used.add(name.lower())
    return name


def _md(text: object) -> str:
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _component_page(component: str, found: list[PooledFinding], link_base: str | None) -> str:
    lines = [f"# {_md(component)}", ""]
    contexts: dict[str, Evidence] = {}
    for f in found:
        lines += [f"## {_md(f.level)} vs {_md(f.baseline)} on {_md(f.metric)}", "",
                  _md(f.summary) + f" ({f.direction} is better).", ""]
        if f.contradiction:
            lines += [f"> ⚠ **Contradiction**: {f.improves} "
                      f"{'study says' if f.improves == 1 else 'studies say'} it improves "
                      f"{_md(f.metric)}, {f.hurts} that it hurts. Compare their contexts "
                      "below (recipe, data, fixed overrides) before trusting either.", ""]
        i2 = "—" if f.i_squared is None else f"{f.i_squared:.0%}"
        lines += ["| studies | improves | hurts | no detectable effect | pooled effect [95% CI]"
                  " | I² | τ² |", "|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {f.studies} | {f.improves} | {f.hurts} | {f.undecided} | "
                  f"{f.estimate:+.3g} [{f.low:.3g}, {f.high:.3g}] | {i2} | {f.tau_squared:.3g} |",
                  "", "| study | project | recipe | data manifest | seeds | effect [CI] | "
                  "Holm p | P(improvement) | verdict |",
                  "|---|---|---|---|---:|---:|---:|---:|---|"]
        for e in f.evidence:
            contexts[e.study_id] = e
            target = f"{link_base}{e.study_id}" if link_base else f"#study-{e.study_id}"
            note = " (stored the other way round, sign flipped)" if e.flipped else ""
            lines.append(f"| [{_md(e.study)}]({target}){note} | {_md(e.project)} | "
                         f"{_md(e.context.get('recipe') or '—')} | "
                         f"{_md(e.context.get('data_manifest_hash') or '—')} | {e.n} | "
                         f"{e.effect:+.3g} [{e.low:.3g}, {e.high:.3g}] | {e.p_adjusted:.3g} | "
                         f"{e.prob_improvement:.0%} | {e.verdict} |")
        lines.append("")
    lines += ["## Studies", ""]
    for study_id, e in contexts.items():
        ctx = e.context
        overrides = ", ".join(f"{k}={v}" for k, v in (ctx.get("overrides") or {}).items())
        lines += [f'<a id="study-{study_id}"></a>', f"- **{_md(e.study)}** (`{study_id}`, "
                  f"project {_md(e.project)}): recipe `{ctx.get('recipe') or '—'}`, design "
                  f"{ctx.get('design') or '—'}, seeds {ctx.get('seeds') or '—'}, fixed "
                  f"overrides {_md(overrides or 'none')}, base config "
                  f"`{ctx.get('base_config_hash') or '—'}`, data manifest "
                  f"`{ctx.get('data_manifest_hash') or '—'}`, git "
                  f"`{ctx.get('git_commit') or '—'}`, tympan {ctx.get('tympan_version') or '—'}"]
    return "\n".join(lines) + "\n"
