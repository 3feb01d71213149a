"""``tympan probe fit|score|drift``: profile, score and compare a stored run's model."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tympan.cli import render
from tympan.cli.context import options

probe_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="Probe a run's model: reference profile, anomaly scores, drift.")

RunArg = Annotated[str, typer.Argument(metavar="RUN",
                                       help="The run whose model to probe (id, prefix or name).")]
RecipeOpt = Annotated[str | None, typer.Option(
    "--recipe", metavar="RECIPE", show_default=False,
    help="Recipe folder, .py file or module with probe_target() (default: the run's own).")]
DataOpt = Annotated[str, typer.Option(
    "--data", metavar="DATA", help="split:NAME of the run's data, an audio file or a folder.")]
ShiftOpt = Annotated[list[str] | None, typer.Option(
    "--shift", metavar="KIND:VALUE", show_default=False,
    help="Shift the inputs (repeatable): white:SNR, pink:SNR, babble:SNR, clip:LEVEL, "
         "speed:FACTOR, reverb:RT60.")]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", metavar="N", show_default=False, help="Use only the first N inputs.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the calibration split and shifts.")]
LayersOpt = Annotated[str, typer.Option(
    "--layers", metavar="LAYERS", help="auto, or comma-separated module names.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _layers(value: str) -> str | list[str]:
    return value if value == "auto" else [name.strip() for name in value.split(",") if name]


@probe_app.command("fit")
def fit_command(
    ctx: typer.Context, run: RunArg, recipe: RecipeOpt = None,
    data: DataOpt = "split:test", shift: ShiftOpt = None, layers: LayersOpt = "auto",
    calibration: Annotated[float, typer.Option(
        "--calibration", help="Fraction of the inputs held out to calibrate p-values.")] = 0.3,
    calibrate_on: Annotated[str | None, typer.Option(
        "--calibrate-on", metavar="DATA", show_default=False,
        help="Calibrate on these inputs instead; all of --data then fits.")] = None,
    detector: Annotated[str, typer.Option(
        "--detector", metavar="DETECTOR",
        help="mahalanobis (Ledoit-Wolf shrinkage) or knn (k-th neighbour distance).")]
    = "mahalanobis",
    pooling: Annotated[str, typer.Option(
        "--pooling", metavar="POOLING",
        help="Per-input features: mean+std or mean of each channel over frames.")]
    = "mean+std",
    limit: LimitOpt = None, seed: SeedOpt = 0,
) -> None:
    """Fit a reference profile of RUN's model on DATA and record it in a probe-fit run."""
    from tympan.probe.jobs import fit_profile

    with render.console().status("fitting the reference profile"):
        result = fit_profile(run, store=options(ctx).store, recipe=recipe, data=data,
                             shifts=tuple(shift or ()), layers=_layers(layers),
                             calibration=calibration, seed=seed, detector=detector,
                             pooling=pooling, limit=limit, calibrate_on=calibrate_on)
    profile = result.profile
    out = render.console()
    held = ("held out to calibrate" if calibrate_on is None
            else f"of {calibrate_on} to calibrate")
    out.print(f"profile of {len(profile.layer_names)} layers fitted on {len(result.inputs)} "
              f"inputs ({result.inputs.label}); {profile.n_calibration} {held}; "
              f"detector {profile.detector}")
    out.print(f"  layers: {', '.join(profile.layer_names)}"
              + ("" if profile.output is None else
                 f"; output scores of {profile.output.head.layer!r}: "
                 f"{', '.join(profile.output.names)}"))
    out.print(f"  smallest p-value 1/{profile.n_calibration + 1} = {profile.min_alpha:.3g}: "
              f"inputs can be flagged at alpha >= {profile.min_alpha:.3g}")
    out.print(f"recorded in run {result.run_id} (artifact probe/profile.npz)")


@probe_app.command("score")
def score_command(
    ctx: typer.Context, run: RunArg, recipe: RecipeOpt = None,
    data: DataOpt = "split:test", shift: ShiftOpt = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", metavar="PROFILE", show_default=False,
        help="A run holding probe/profile.npz, or an .npz file (default: RUN's latest).")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Level at which to flag.")] = 0.01,
    label: Annotated[str | None, typer.Option(
        "--label", metavar="LABEL", show_default=False,
        help="Name of this set of inputs (default: the data and shifts).")] = None,
    limit: LimitOpt = None, seed: SeedOpt = 0,
    show: Annotated[int, typer.Option("--show", metavar="N",
                                      help="Inputs listed, most anomalous first.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Score each input of DATA against RUN's reference profile: flagged or not, and the
    first layer where it diverges."""
    from tympan.probe.jobs import score_inputs

    with render.console().status("scoring inputs"):
        result = score_inputs(run, store=options(ctx).store, recipe=recipe, profile=profile,
                              data=data, shifts=tuple(shift or ()), alpha=alpha, label=label,
                              limit=limit, seed=seed)
    if as_json:
        render.print_json(result.report | {"run": result.run_id})
        return
    out = render.console()
    for renderable in anomaly_renderables(result.report, show):
        out.print(renderable)
    out.print(f"recorded in run {result.run_id}")


@probe_app.command("drift")
def drift_command(
    ctx: typer.Context, run: RunArg, recipe: RecipeOpt = None,
    data_a: Annotated[str, typer.Option("--a", metavar="DATA",
                                        help="First data set (split:NAME, file or folder).")]
    = "split:test",
    data_b: Annotated[str | None, typer.Option(
        "--b", metavar="DATA", show_default=False,
        help="Second data set (default: the first, with --b-shift applied).")] = None,
    shift_a: Annotated[list[str] | None, typer.Option(
        "--a-shift", metavar="KIND:VALUE", show_default=False,
        help="Shift the first data set (repeatable).")] = None,
    shift_b: Annotated[list[str] | None, typer.Option(
        "--b-shift", metavar="KIND:VALUE", show_default=False,
        help="Shift the second data set (repeatable).")] = None,
    checkpoint_b: Annotated[str | None, typer.Option(
        "--checkpoint-b", metavar="RUN", show_default=False,
        help="Compare RUN's model with this run's model on the first data set.")] = None,
    layers: LayersOpt = "auto",
    alpha: Annotated[float, typer.Option("--alpha", help="Level after Holm.")] = 0.05,
    permutations: Annotated[int, typer.Option("--permutations",
                                              help="Permutations per layer.")] = 500,
    limit: LimitOpt = None, seed: SeedOpt = 0, as_json: JsonOpt = False,
) -> None:
    """Which layers of RUN's model drift between two data sets, or between two checkpoints."""
    from tympan.probe.jobs import drift_data

    with render.console().status("testing drift"):
        result = drift_data(run, store=options(ctx).store, recipe=recipe, data_a=data_a,
                            data_b=data_b, shifts_a=tuple(shift_a or ()),
                            shifts_b=tuple(shift_b or ()), checkpoint_b=checkpoint_b,
                            layers=_layers(layers), alpha=alpha, permutations=permutations,
                            limit=limit, seed=seed)
    if as_json:
        render.print_json(result.report | {"run": result.run_id})
        return
    out = render.console()
    out.print(drift_table(result.report))
    out.print(f"recorded in run {result.run_id}")


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], top: float | None = None) -> str:
    """One character per value, its height the value's share of ``top`` (default: the
    largest, at least 3); negative values are the lowest bar, None (infinite) the highest."""
    finite = [v for v in values if v is not None]
    top = top or max([3.0, *finite])
    out = []
    for v in values:
        level = len(SPARKS) - 1 if v is None else round((len(SPARKS) - 1) * max(v, 0.0) / top)
        out.append(SPARKS[min(level, len(SPARKS) - 1)])
    return "".join(out)


def anomaly_renderables(report: dict[str, Any], show: int = 10) -> list[Any]:
    """A one-line verdict, a table of the most anomalous inputs (combined score, p-value,
    where the divergence enters, the z profile as a sparkline), and the stages' names."""
    rows = report["inputs"]
    flagged = [r for r in rows if r["flagged"]]
    entries: dict[str, int] = {}
    for r in flagged:
        layer = _entry(r) or "(none named)"
        entries[layer] = entries.get(layer, 0) + 1
    where = ", ".join(f"{k} ({v})" for k, v in sorted(entries.items(), key=lambda kv: -kv[1]))
    head = render.text(f"{report['label']}: {len(flagged)} of {len(rows)} inputs flagged at "
                       f"alpha = {report['alpha']:g}", style="bold")
    if report.get("n_calibration"):
        head.append(f" (smallest p-value 1/{report['n_calibration'] + 1} = "
                    f"{1 / (report['n_calibration'] + 1):.3g})", style="")
    if where:
        head.append(f"; divergence enters at: {where}", style="")
    if show <= 0:
        return [head]
    stages = report.get("stages") or report.get("layers") or []
    table = render.table("input", "score", "p-value", "flagged", "enters at",
                         "z by stage", "max z", right=["score", "p-value", "max z"])
    # Most anomalous first: the combined score is continuous (p-values tie at their floor).
    # A score stored as None was infinite (non-finite activations): first of all.
    ranked = sorted(rows, key=lambda r: (r["p_value"], -_score(r)))
    for r in ranked[:show]:
        z = [(r.get("z") or {}).get(s) for s in stages]
        finite = [v for v in z if v is not None]
        score = r.get("anomaly_score")
        table.add_row(render.text(r["id"]), "inf" if score is None else f"{score:.1f}",
                      f"{r['p_value']:.3g}",
                      render.text("yes", style="red bold") if r["flagged"] else render.text("no"),
                      render.text(_entry(r) or "-"), sparkline(z) if z else "-",
                      f"{max(finite):.1f}" if finite else "inf")
    legend = render.text(f"z by stage: {' > '.join(stages)} (calibrated z of each layer's "
                         "distance, then of the model's output scores)", style="dim")
    return [head, table, legend]


def _score(row: dict[str, Any]) -> float:
    score = row.get("anomaly_score")
    return float("inf") if score is None else float(score)


def _entry(row: dict[str, Any]) -> str | None:
    """Where the divergence enters (reports before issue 12 named the first divergent
    layer)."""
    return row.get("entry_layer", row.get("first_divergent_layer"))


def drift_table(report: dict[str, Any]) -> Any:
    table = render.table("layer", "MMD", "p-value", "Holm p", "drifted",
                         title=f"drift: {report['a']} ({report['n_a']}) vs {report['b']} "
                               f"({report['n_b']}), alpha = {report['alpha']:g}",
                         right=["MMD", "p-value", "Holm p"])
    for row in report["layers"]:
        table.add_row(render.text(row["layer"]), f"{row['mmd']:.4f}", f"{row['p_value']:.3g}",
                      f"{row['holm']:.3g}",
                      render.text("yes", style="red bold") if row["drifted"] else render.text("no"))
    return table
