"""The forest plot of a study: every comparison's effect and interval, as standalone SVG.

One row per comparison per metric, grouped by metric (metrics have different units, so
each group has its own axis). A vertical line marks zero; the better side of it is labelled
("← better" for a lower-is-better metric); markers are coloured by verdict. Every string
that came from the user (factor names, levels, metric names) is escaped.
"""

from __future__ import annotations

import math
from html import escape

from tympan.study import stats
from tympan.study.analysis import Comparison, StudyAnalysis

COLOURS = {stats.IMPROVES: "#1a7f37", stats.HURTS: "#cf222e", stats.NO_EFFECT: "#6e7781"}
WIDTH = 880
LABEL_W = 250  # left column: comparison labels
VALUE_W = 190  # right column: effect [low, high]
ROW_H = 26
HEAD_H = 30  # metric heading above each group
AXIS_H = 44  # axis, ticks and the "better" label below each group
GAP = 18
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def verdict_colour(verdict: str) -> str:
    return COLOURS.get(verdict, COLOURS[stats.NO_EFFECT])


def number(value: float, signed: bool = False) -> str:
    """An effect in 3 significant digits (``-0.0512``); ``nan`` as such."""
    if not math.isfinite(value):
        return "nan"
    text = f"{value:+.3g}" if signed else f"{value:.3g}"
    return text.replace("-", "−")  # a true minus sign, the width of a plus


def by_metric(analysis: StudyAnalysis) -> dict[str, list[Comparison]]:
    groups: dict[str, list[Comparison]] = {}
    for c in analysis.comparisons:
        groups.setdefault(c.metric.key, []).append(c)
    return groups


def forest_svg(analysis: StudyAnalysis) -> str:
    """The forest plot as an ``<svg>`` document (no external references)."""
    groups = by_metric(analysis)
    if not groups:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="40" '
                f'viewBox="0 0 {WIDTH} 40" font-family="{FONT}" font-size="13">'
                '<text x="0" y="24" fill="#6e7781">no comparisons to plot</text></svg>')
    parts: list[str] = []
    y = 0.0
    for key, comparisons in groups.items():
        part, height = _group(key, comparisons, y)
        parts.append(part)
        y += height + GAP
    height = int(y - GAP)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}" font-size="13" '
            'role="img" aria-label="forest plot of effects with confidence intervals">'
            + "".join(parts) + "</svg>")


def _group(key: str, comparisons: list[Comparison], top: float) -> tuple[str, float]:
    metric = comparisons[0].metric
    lows = [c.effect.low for c in comparisons if math.isfinite(c.effect.low)]
    highs = [c.effect.high for c in comparisons if math.isfinite(c.effect.high)]
    lo, hi = min([0.0, *lows]), max([0.0, *highs])
    if hi - lo == 0:
        lo, hi = -1.0, 1.0
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    x0, x1 = LABEL_W + 10, WIDTH - VALUE_W - 10

    def x(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    rows_top = top + HEAD_H
    rows_bottom = rows_top + ROW_H * len(comparisons)
    out = ['<g class="metric-group">',
           f'<text x="0" y="{top + 18:.1f}" font-weight="600" font-size="14" fill="#1f2328">'
           f'{escape(key)}</text>',
           f'<text x="{LABEL_W + 10 + (x1 - x0) / 2:.1f}" y="{top + 18:.1f}" '
           f'text-anchor="middle" fill="#59636e" font-size="12">effect (treatment − baseline'
           f'), {"lower" if metric.lower_is_better else "higher"} is better</text>',
           f'<text x="{WIDTH}" y="{top + 18:.1f}" text-anchor="end" fill="#59636e" '
           f'font-size="12">effect [CI]</text>']
    for i, c in enumerate(comparisons):
        cy = rows_top + ROW_H * i + ROW_H / 2
        if i % 2 == 0:
            out.append(f'<rect x="0" y="{cy - ROW_H / 2:.1f}" width="{WIDTH}" '
                       f'height="{ROW_H}" fill="#f6f8fa"/>')
        colour = verdict_colour(c.verdict)
        e = c.effect
        label = c.label if len(c.label) <= 36 else c.label[:35] + "…"
        out.append(f'<text x="6" y="{cy + 4.5:.1f}" fill="#1f2328">{escape(label)}'
                   f'<title>{escape(c.label)} vs {escape(c.baseline)}</title></text>')
        if math.isfinite(e.low) and math.isfinite(e.high):
            out.append(f'<line x1="{x(e.low):.1f}" y1="{cy:.1f}" x2="{x(e.high):.1f}" '
                       f'y2="{cy:.1f}" stroke="{colour}" stroke-width="2"/>')
            for end in (e.low, e.high):
                out.append(f'<line x1="{x(end):.1f}" y1="{cy - 5:.1f}" x2="{x(end):.1f}" '
                           f'y2="{cy + 5:.1f}" stroke="{colour}" stroke-width="1.5"/>')
        if math.isfinite(e.estimate):
            out.append(f'<circle class="marker" data-verdict="{escape(c.verdict)}" '
                       f'cx="{x(e.estimate):.1f}" cy="{cy:.1f}" r="5" fill="{colour}" '
                       f'stroke="#ffffff" stroke-width="1.5"><title>{escape(c.label)}: '
                       f'{escape(c.verdict)}</title></circle>')
        out.append(f'<text x="{WIDTH - 4}" y="{cy + 4.5:.1f}" text-anchor="end" '
                   f'fill="#1f2328" font-variant-numeric="tabular-nums">'
                   f'{number(e.estimate, True)} [{number(e.low)}, {number(e.high)}]</text>')
    zero = x(0.0)
    out.append(f'<line x1="{zero:.1f}" y1="{rows_top - 4:.1f}" x2="{zero:.1f}" '
               f'y2="{rows_bottom + 4:.1f}" stroke="#1f2328" stroke-width="1" '
               'stroke-dasharray="3 3"/>')
    axis_y = rows_bottom + 6
    out.append(f'<line x1="{x0:.1f}" y1="{axis_y:.1f}" x2="{x1:.1f}" y2="{axis_y:.1f}" '
               'stroke="#8c959f" stroke-width="1"/>')
    for t in ticks:
        out.append(f'<line x1="{x(t):.1f}" y1="{axis_y:.1f}" x2="{x(t):.1f}" '
                   f'y2="{axis_y + 4:.1f}" stroke="#8c959f"/>'
                   f'<text x="{x(t):.1f}" y="{axis_y + 16:.1f}" text-anchor="middle" '
                   f'fill="#59636e" font-size="11">{number(t)}</text>')
    better_left = metric.lower_is_better
    label_y = axis_y + 34
    out.append(f'<text class="better" x="{zero - 8:.1f}" y="{label_y:.1f}" text-anchor="end" '
               f'font-size="12" fill="{"#1a7f37" if better_left else "#59636e"}">'
               f'{"← better" if better_left else "← worse"}</text>')
    out.append(f'<text x="{zero + 8:.1f}" y="{label_y:.1f}" font-size="12" '
               f'fill="{"#59636e" if better_left else "#1a7f37"}">'
               f'{"worse →" if better_left else "better →"}</text>')
    out.append("</g>")
    return "".join(out), HEAD_H + ROW_H * len(comparisons) + AXIS_H


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    span = hi - lo
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [0.0 if k == 0 else round(k * step, 12) for k in range(first, last + 1)]
