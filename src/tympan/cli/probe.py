"""``tympan probe fit|score|drift``: profile, score and compare a stored run's model."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

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
                             pooling=pooling, limit=limit)
    profile = result.profile
    out = render.console()
    out.print(f"profile of {len(profile.layer_names)} layers fitted on {len(result.inputs)} "
              f"inputs ({result.inputs.label}); {profile.n_calibration} held out to calibrate; "
              f"detector {profile.detector}")
    out.print(f"  layers: {', '.join(profile.layer_names)}")
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


def anomaly_renderables(report: dict[str, Any], show: int = 10) -> list[Any]:
    """A one-line verdict, a table of the most anomalous inputs, and where they diverge."""
    rows = report["inputs"]
    flagged = [r for r in rows if r["flagged"]]
    firsts: dict[str, int] = {}
    for r in flagged:
        layer = r["first_divergent_layer"] or "(no single layer)"
        firsts[layer] = firsts.get(layer, 0) + 1
    where = ", ".join(f"{k} ({v})" for k, v in sorted(firsts.items(), key=lambda kv: -kv[1]))
    head = Text(f"{report['label']}: {len(flagged)} of {len(rows)} inputs flagged at "
                f"alpha = {report['alpha']:g}", style="bold")
    if where:
        head.append(f"; first divergent layer: {where}", style="")
    if show <= 0:
        return [head]
    table = render.table("input", "p-value", "flagged", "first divergent layer",
                         "most anomalous layer", right=["p-value"])
    # Most anomalous first: the p-value, ties (at the calibration floor) by the score.
    ranked = sorted(rows, key=lambda r: (r["p_value"], -(r.get("anomaly_score") or 0.0)))
    for r in ranked[:show]:
        worst = min(r["p_values"], key=r["p_values"].get) if r["p_values"] else None
        table.add_row(render.text(r["id"]), f"{r['p_value']:.3g}",
                      Text("yes", style="red bold") if r["flagged"] else Text("no"),
                      render.text(r["first_divergent_layer"] or "-"), render.text(worst))
    return [head, table]


def drift_table(report: dict[str, Any]) -> Any:
    table = render.table("layer", "MMD", "p-value", "Holm p", "drifted",
                         title=f"drift: {report['a']} ({report['n_a']}) vs {report['b']} "
                               f"({report['n_b']}), alpha = {report['alpha']:g}",
                         right=["MMD", "p-value", "Holm p"])
    for row in report["layers"]:
        table.add_row(render.text(row["layer"]), f"{row['mmd']:.4f}", f"{row['p_value']:.3g}",
                      f"{row['holm']:.3g}",
                      Text("yes", style="red bold") if row["drifted"] else Text("no"))
    return table
