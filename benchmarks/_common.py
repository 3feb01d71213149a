"""Shared helpers for tympan's benchmark scripts: worker results, medians, ratios, tables.

A benchmark runs each tool's measurement in a subprocess (a "worker") that prints one
result line, ``RESULT_MARK`` followed by JSON, so that tools' own output (progress bars,
banners) can share stdout. The parent parses it with `parse_result` and renders tables.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULT_MARK = "@@tympan-bench-result@@ "


@dataclass
class Result:
    """One tool's figure, as a worker reports it and the parent tabulates it."""

    tool: str  # "tympan", "mlflow", ...
    figure: str  # "caller", "ingest", "ingest-pg", "read", "import"
    status: str = "ok"  # ok | not installed | skipped | n/a | error
    value: float | None = None  # the figure as shown, in `unit`
    unit: str = ""
    points: int | None = None  # workload size behind the figure (calls or points)
    norm: float | None = None  # value made comparable across tools (e.g. ms per 1M points)
    samples: list[float] = field(default_factory=list)  # per-repeat values, same unit
    note: str = ""
    version: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def emit(result: Result) -> None:
    """Print the worker's result line (the parent looks for the last one)."""
    print(RESULT_MARK + json.dumps(result.to_json()), flush=True)


def parse_result(stdout: str) -> Result | None:
    """The last result line of a worker's stdout, or None when it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return Result(**json.loads(line[len(RESULT_MARK) :]))
    return None


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def fmt_num(x: float) -> str:
    """Three significant digits, thousands separated: 1.23, 45.6, 789, 12,300."""
    r = float(f"{x:.3g}")
    return f"{r:,.0f}" if abs(r) >= 100 else f"{x:.3g}"


def ratio_text(tympan: float, peer: float, higher_is_better: bool) -> str:
    """How tympan compares with a peer on the same workload, e.g. 'tympan 412x faster'."""
    r = tympan / peer if higher_is_better else peer / tympan
    if r >= 1:
        return f"tympan {fmt_num(r)}x faster"
    return f"tympan {fmt_num(1 / r)}x slower"


@dataclass
class Target:
    """A performance target from the issue, checked on tympan's normalised figure."""

    text: str
    met: Callable[[float], bool]


def render_table(
    title: str,
    results: Sequence[Result],
    *,
    higher_is_better: bool,
    targets: dict[str, Target],
    baseline: Result | None,
    labels: dict[str, str],
) -> Any:
    """A rich Table: tool, figure, unit, ratio vs tympan, target (tympan rows), notes."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("tool", "left"),
        ("figure", "right"),
        ("unit", "left"),
        ("ratio vs tympan", "left"),
        ("target", "left"),
        ("notes", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        label = labels.get(r.figure, r.tool) if r.tool == "tympan" else r.tool
        if r.version:
            label = f"{label} {r.version}"
        if r.status != "ok" or r.value is None:
            why = f"{r.status} ({r.note})" if r.note else r.status
            table.add_row(label, "-", r.unit, "", "", why)
            continue
        ratio = ""
        if r.tool != "tympan" and baseline is not None and baseline.norm and r.norm:
            ratio = ratio_text(baseline.norm, r.norm, higher_is_better)
        verdict = ""
        target = targets.get(r.figure)
        if r.tool == "tympan" and target is not None and r.norm is not None:
            verdict = f"{target.text}: " + ("PASS" if target.met(r.norm) else "MISS")
        table.add_row(label, fmt_num(r.value), r.unit, ratio, verdict, r.note)
    return table


# ------------------------------------------------------------------ running workers


def python_for(tool: str, root: Path) -> str:
    """The interpreter for `tool`'s worker: root/.venv-TOOL when present, else ours."""
    own = root / f".venv-{tool}" / "bin" / "python"
    return str(own) if own.exists() else sys.executable


def _run(python: str, args: list[str], env: dict[str, str], **kw: Any) -> Any:
    """Run `python ARGS` in a neutral working directory with `env` over ours."""
    return subprocess.run(
        [python, *args], env={**os.environ, **env}, cwd=tempfile.gettempdir(), **kw
    )


def has_module(python: str, module: str, env: dict[str, str], attrs: Sequence[str] = ()) -> bool:
    """Whether `python` finds `module` (and, when given, imports it and finds `attrs`)."""
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
    if attrs:
        code = (
            "import importlib, sys; m = importlib.import_module(sys.argv[1]);"
            " sys.exit(not all(hasattr(m, a) for a in sys.argv[2:]))"
        )
    return _run(python, ["-c", code, module, *attrs], env, capture_output=True).returncode == 0


def spawn_worker(
    python: str,
    script: Path,
    tool: str,
    figure: str,
    extra: list[str],
    env: dict[str, str],
    timeout: float,
) -> Result:
    """Run `script --worker TOOL --figure FIG` and return the result it printed."""
    args = [str(script), "--worker", tool, "--figure", figure, *extra]
    t0 = time.perf_counter()
    try:
        proc = _run(python, args, env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Result(tool, figure, "error", note=f"worker timed out after {timeout:.0f} s")
    result = parse_result(proc.stdout)
    if result is None:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        result = Result(tool, figure, "error", note=f"worker exit {proc.returncode}: {tail}")
    progress(f"{tool} {figure}: {time.perf_counter() - t0:.1f} s")
    return result


def measure_import(tool: str, python: str, env: dict[str, str], repeats: int) -> Result:
    """Median wall time of `python -c "import TOOL"` minus that of `python -c "pass"`."""

    def wall(code: str) -> float:
        t0 = time.perf_counter()
        _run(python, ["-c", code], env, check=True, capture_output=True)
        return (time.perf_counter() - t0) * 1e3

    wall(f"import {tool}")  # warm the OS cache and bytecode once, untimed
    imports, bare = [], []
    for _ in range(repeats):  # interleaved so drift hits both alike
        imports.append(wall(f"import {tool}"))
        bare.append(wall("pass"))
    v = median(imports) - median(bare)
    note = f"median of {repeats}: import {median(imports):.0f} ms - bare {median(bare):.0f} ms"
    return Result(
        tool,
        "import",
        value=v,
        unit="ms",
        norm=v,
        samples=imports,
        note=note,
        version=version_in(python, tool, env),
    )


def version_in(python: str, dist: str, env: dict[str, str]) -> str:
    """The installed version of distribution `dist` as `python` sees it, or ''."""
    code = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    return _run(python, ["-c", code, dist], env, capture_output=True, text=True).stdout.strip()


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
