"""Read routes for ablation studies: the list, one study's analysis, its forest plot and
report, and the findings pooled across studies."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from tympan.server.routes._read import ReadChecks, Reader, StoreDep, json_response, scoped_project
from tympan.store import studies as study_rows
from tympan.study.analysis import Comparison, StudyAnalysis
from tympan.study.catalog import analysed_study, list_studies
from tympan.study.findings import pooled_findings
from tympan.study.records import find_study
from tympan.study.report import (
    context_rows,
    forest_svg,
    render_html,
    sorted_trials,
    verdict_counts,
)

router = APIRouter(prefix="/api", tags=["studies"], dependencies=ReadChecks)

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"


@router.get("/studies")
def studies(principal: Reader, store: StoreDep, project: str | None = None) -> Response:
    """Every study the token can see, newest first."""
    found = list_studies(store, scoped_project(principal, project))
    return json_response({"studies": [asdict(s) for s in found]})


def _analysis(principal: Any, store: Any, study: str, project: str | None) -> StudyAnalysis:
    return analysed_study(store, study, scoped_project(principal, project),
                          visible=principal.projects_filter())


@router.get("/studies/{study}")
def study(principal: Reader, store: StoreDep, study: str, project: str | None = None
          ) -> Response:
    """A study's analysis: context, comparisons with intervals and verdicts, trials."""
    a = _analysis(principal, store, study, project)
    with store.read() as conn:
        row = study_rows.get(conn, a.study_id)
    return json_response({
        "id": a.study_id, "name": a.name, "project": a.project,
        "description": a.spec.description, "design": a.spec.design,
        "created_at": row.created_at if row is not None else None,
        "updated_at": row.updated_at if row is not None else None,
        "context": a.context,
        "context_rows": [list(r) for r in context_rows(a)],
        "summary": verdict_counts(a),
        "metrics": [{"key": m.key, "direction": m.direction, "summary": m.summary}
                    for m in a.spec.metrics],
        "comparisons": [comparison_fields(c) for c in a.comparisons],
        "trials": [{**asdict(t.trial), "run_name": t.run_name, "values": t.values,
                    "missing": t.missing} for t in sorted_trials(a)],
        "notes": a.notes,
        "warnings": a.warnings,
    })


def comparison_fields(c: Comparison) -> dict[str, Any]:
    e = c.effect
    return {"kind": c.kind, "factor": c.factor, "level": c.level, "baseline": c.baseline,
            "label": c.label, "metric": c.metric.key, "direction": c.metric.direction,
            "estimate": e.estimate, "low": e.low, "high": e.high, "p_value": e.p_value,
            "p_adjusted": c.p_adjusted, "prob_improvement": e.prob_improvement, "n": e.n,
            "n_boot": e.n_boot, "method": e.method, "interval": e.interval, "test": e.test,
            "verdict": c.verdict, "seeds_needed": c.seeds_needed, "seeds_total": c.seeds_total,
            "dropped": [asdict(d) for d in c.dropped]}


@router.get("/studies/{study}/forest.svg")
def forest(principal: Reader, store: StoreDep, study: str, project: str | None = None
           ) -> Response:
    """The study's forest plot as SVG."""
    svg = forest_svg(_analysis(principal, store, study, project))
    return Response(svg, media_type="image/svg+xml",
                    headers={"Content-Security-Policy": REPORT_CSP,
                             "X-Content-Type-Options": "nosniff"})


@router.get("/studies/{study}/report.html")
def report(principal: Reader, store: StoreDep, study: str, project: str | None = None
           ) -> Response:
    """The standalone HTML report, run ids linking to the run pages."""
    html = render_html(_analysis(principal, store, study, project), link_base="/runs/")
    return Response(html, media_type="text/html",
                    headers={"Content-Security-Policy": REPORT_CSP,
                             "X-Content-Type-Options": "nosniff"})


@router.get("/studies/{study}/quantify.html")
def quantification(principal: Reader, store: StoreDep, study: str, target: str | None = None,
                   metric: str | None = None, project: str | None = None) -> Response:
    """A learning-curve study's quantification page: the curve with its band, the target
    line, the estimate and its interval (``?target=test/wer=0.1``; without it, the curve)."""
    from tympan.study.curves_report import quantification_page
    from tympan.study.quantify import parse_target, quantify

    key, value = parse_target(target) if target else (metric or None, None)
    # Resolved as the other study routes do: another project's study is "no study", as is
    # one that does not exist; quantify then reads exactly that one.
    row = find_study(store, study, scoped_project(principal, project),
                     visible=principal.projects_filter())
    result = quantify(store, row.id, metric=key, target=value)
    return Response(quantification_page(result), media_type="text/html",
                    headers={"Content-Security-Policy": REPORT_CSP,
                             "X-Content-Type-Options": "nosniff"})


@router.get("/findings")
def findings(principal: Reader, store: StoreDep, component: str | None = None,
             metric: str | None = None, contradictions: bool = False) -> Response:
    """The findings knowledge base, pooled across the studies the token can see."""
    found = pooled_findings(store, component=component or None, metric=metric or None,
                            project=principal.projects_filter())
    if contradictions:
        found = [f for f in found if f.contradiction]
    return json_response({"findings": [{**f.as_dict(), "label": f.label,
                                        "summary": f.summary} for f in found]})
