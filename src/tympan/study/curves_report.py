"""The quantification report: the curve with its band, the target and the estimate, drawn as
PNG and SVG, and the answer with its table as Markdown, HTML and JSON.

The figure needs matplotlib (``pip install 'tympan[plot]'``); without it the text, HTML and
JSON are still written, and the result says the plot was skipped and why.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from tympan.study.curve_shapes import AveragedFit
from tympan.study.curves import PowerLawFit
from tympan.study.quantify import Quantification, size_text

_BAND = "#4c72b0"
_TARGET = "#cf222e"


def quantification_json(q: Quantification) -> dict[str, Any]:
    """Everything the report shows, as plain JSON (the UI's quantification page reads it)."""
    grid = _grid(q)
    value, low, high = q.fit.band(grid, q.level)
    answer = q.answer
    return {
        "study": q.study, "study_id": q.study_id, "project": q.project, "metric": q.metric.key,
        "direction": q.metric.direction, "unit": q.unit, "measure": q.measure,
        "steps": q.steps, "level": q.level, "method": q.fit.method, "sentence": q.sentence,
        "fit": _fit_json(q),
        "points": [{"size": p.size, "fraction": p.fraction, "seed": p.seed, "value": p.value,
                    "run_id": p.run_id} for p in q.points],
        "means": [{"size": float(s), "mean": float(m), "se": float(math.sqrt(v)),
                   "seeds": int(k)} for s, m, v, k in zip(q.data.sizes, q.data.means,
                                                          q.data.variances, q.data.seeds,
                                                          strict=True)],
        "band": {"sizes": grid.tolist(), "value": value.tolist(), "low": low.tolist(),
                 "high": high.tolist()},
        "target": q.target,
        "answer": None if answer is None else {
            "verdict": answer.verdict, "estimate": _finite(answer.estimate),
            "low": _finite(answer.low), "high": _finite(answer.high), "have": answer.have,
            "supported_limit": answer.supported_limit, "reachable": answer.reachable,
            "extrapolated": answer.extrapolated},
        "notes": q.notes,
    }


def _fit_json(q: Quantification) -> dict[str, Any]:
    fit: dict[str, Any] = {"description": q.fit.describe(size_text(q.fit.n0, q.unit)),
                           "irreducible": q.fit.irreducible, "smallest": q.fit.n0,
                           "largest": q.fit.largest, "noise_inflation": q.fit.inflation}
    if isinstance(q.fit, PowerLawFit):
        _, fit["excess_at_smallest"], fit["exponent"] = q.fit.point()
    if isinstance(q.fit, AveragedFit):
        fit["shapes"] = q.fit.family_weights
        fit["widening"] = math.sqrt(q.fit.widening)
    return fit


def write_quantification(q: Quantification, out: Path) -> dict[str, Path | str]:
    """Write curve.png, curve.svg, quantify.md, quantify.html and quantify.json into ``out``;
    returns their paths (and ``plot_skipped`` with the reason when matplotlib is missing)."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path | str] = {}
    svg = ""
    try:
        png, svg = render_plot(q)
    except ImportError:
        paths["plot_skipped"] = ("matplotlib is not installed: pip install 'tympan[plot]' for "
                                 "curve.png and curve.svg")
    else:
        (out / "curve.png").write_bytes(png)
        (out / "curve.svg").write_text(svg, encoding="utf-8")
        paths["png"], paths["svg"] = out / "curve.png", out / "curve.svg"
    (out / "quantify.json").write_text(json.dumps(quantification_json(q), indent=1) + "\n",
                                       encoding="utf-8")
    (out / "quantify.md").write_text(render_markdown(q, bool(svg)), encoding="utf-8")
    (out / "quantify.html").write_text(render_html(q, svg), encoding="utf-8")
    paths.update(json=out / "quantify.json", markdown=out / "quantify.md",
                 html=out / "quantify.html")
    return paths


def quantification_page(q: Quantification) -> str:
    """The report as one HTML page (the web UI's quantification page), its plot inline when
    matplotlib is installed."""
    try:
        _, svg = render_plot(q)
    except ImportError:
        svg = ""
    asked = "" if q.target is None else f"{q.metric.key}={q.target:g}"
    form = (f'<form method="get" class="target"><label>Target <input name="target" '
            f'value="{escape(asked)}" placeholder="{escape(q.metric.key)}=0.05"></label> '
            '<button type="submit">Estimate</button></form>')
    html = render_html(q, svg)
    at = html.index("</h1>") + len("</h1>")
    return html[:at] + "\n" + form + html[at:]


def render_plot(q: Quantification) -> tuple[bytes, str]:
    """(PNG bytes, SVG text) of the curve: seeds' values, means, the fitted curve and its band
    (dashed and shaded lighter past the data: extrapolation), the target and the estimate."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.6), dpi=110)
    ax = fig.add_subplot()
    grid = _grid(q)
    value, low, high = q.fit.band(grid, q.level)
    inside = grid <= q.fit.largest
    ax.fill_between(grid[inside], low[inside], high[inside], color=_BAND, alpha=0.25, lw=0,
                    label=f"{q.level * 100:.0f}% band")
    ax.fill_between(grid[~inside], low[~inside], high[~inside], color=_BAND, alpha=0.12, lw=0,
                    label="extrapolated")
    ax.plot(grid[inside], value[inside], color=_BAND, lw=2, label="fitted curve")
    ax.plot(grid[~inside], value[~inside], color=_BAND, lw=2, ls="--")
    ax.scatter([p.size for p in q.points], [p.value for p in q.points], s=12, color="#555",
               alpha=0.6, label="seeds", zorder=3)
    ax.errorbar(q.data.sizes, q.data.means, yerr=np.sqrt(q.data.variances), fmt="o",
                color="black", ms=5, capsize=3, label="mean ± se", zorder=4)
    if q.target is not None:
        ax.axhline(q.target, color=_TARGET, lw=1.2, ls=":", label=f"target {q.target:g}")
    answer = q.answer
    if answer is not None and answer.verdict == "estimate":
        top = answer.high if math.isfinite(answer.high) else grid[-1]
        ax.axvspan(answer.low, top, color=_TARGET, alpha=0.08, lw=0)
        ax.axvline(answer.estimate, color=_TARGET, lw=1.5,
                   label=f"estimate {size_text(answer.estimate, q.unit)}")
    ax.axvline(q.fit.largest, color="#999", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"training data ({q.measure or 'fraction of the corpus'})")
    ax.set_ylabel(q.metric.key)
    title = f"{q.study}: {q.metric.key}" + (f" at {q.steps} steps" if q.steps else "")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    png, svg = io.BytesIO(), io.StringIO()
    fig.savefig(png, format="png")
    fig.savefig(svg, format="svg")
    return png.getvalue(), svg.getvalue()


def _rows(q: Quantification) -> list[list[str]]:
    rows = []
    for s, m, v, k in zip(q.data.sizes, q.data.means, q.data.variances, q.data.seeds,
                          strict=True):
        fitted = float(q.fit.band([s], q.level)[0][0])
        rows.append([size_text(float(s), q.unit), f"{int(k)}", f"{m:.4g}",
                     f"{math.sqrt(v):.2g}", f"{fitted:.4g}"])
    return rows


_HEAD = ["data", "seeds", "mean", "se", "fitted"]


def render_markdown(q: Quantification, plotted: bool) -> str:
    lines = [f"# How much data: {q.study}, {q.metric.key}", "", f"**{q.sentence}.**", ""]
    if plotted:
        lines += ["![learning curve](curve.svg)", ""]
    lines += [f"Fit of {q.metric.key}: {q.fit.describe(size_text(q.fit.n0, q.unit))}; "
              f"{q.level * 100:.0f}% intervals; answers up to {q.fit.max_extrapolation:g}x "
              "the largest size measured. "
              "See docs/quantify.md.", "",
              "| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(q)]
    lines += [""] + [f"- note: {n}" for n in q.notes]
    return "\n".join(lines).rstrip() + "\n"


def render_html(q: Quantification, svg: str) -> str:
    table = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
                    for row in _rows(q))
    head = "".join(f"<th>{escape(h)}</th>" for h in _HEAD)
    notes = "".join(f"<li>{escape(n)}</li>" for n in q.notes)
    figure = svg[svg.find("<svg"):] if svg else "<p>(no plot: matplotlib is not installed)</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>How much data: {escape(q.study)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#1f2328}}
table{{border-collapse:collapse}}td,th{{border:1px solid #d0d7de;padding:.25rem .6rem;
text-align:right}}.answer{{font-size:1.15rem;background:#f6f8fa;padding:.8rem;
border-left:4px solid {_TARGET}}}</style></head><body>
<h1>How much data: {escape(q.study)}, {escape(q.metric.key)}</h1>
<p class="answer">{escape(q.sentence)}.</p>
{figure}
<p>Fit of {escape(q.metric.key)}: {escape(q.fit.describe(size_text(q.fit.n0, q.unit)))};
{q.level * 100:.0f}% intervals;
answers up to {q.fit.max_extrapolation:g}× the largest size measured.</p>
<table><thead><tr>{head}</tr></thead><tbody>{table}</tbody></table>
<ul>{notes}</ul></body></html>
"""


def _grid(q: Quantification) -> np.ndarray:
    """Sizes to draw: from the smallest to past the estimate (at most the limit)."""
    top = q.fit.largest * 4
    if q.answer is not None and q.answer.verdict == "estimate":
        edge = q.answer.high if math.isfinite(q.answer.high) else q.fit.limit
        top = max(top, edge * 1.3)
    top = min(max(top, q.fit.largest * 1.5), q.fit.limit)
    return np.exp(np.linspace(math.log(q.fit.n0), math.log(top), 200))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
