"""``tympan model ...``: register run checkpoints as model versions, move aliases with their
reasons, ask which version held an alias when, and write model cards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from tympan.cli import render
from tympan.cli.context import options

if TYPE_CHECKING:
    from rich.text import Text

model_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="The model registry: versions, aliases and their history, cards.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
RefArg = Annotated[str, typer.Argument(
    metavar="MODEL", help="models:/NAME@ALIAS, models:/NAME/VERSION, NAME@ALIAS, NAME/VERSION "
                          "or NAME (its latest version).")]
ReasonOpt = Annotated[str, typer.Option("--reason", metavar="TEXT",
                                        help="Why, kept in the alias history.")]
AdminOpt = Annotated[bool, typer.Option(
    "--admin", help="Use admin authority (needed for a protected alias unless the evidence is "
                    "a gate that passed); recorded in the history.")]


@model_app.command("register")
def register_command(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN",
                                       help="The run whose checkpoint to register.")],
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="The model's name.")],
    artifact: Annotated[str, typer.Option(
        "--artifact", metavar="PATH", help="The checkpoint among the run's artifacts.")]
    = "model.pt",
    recipe: Annotated[str | None, typer.Option(
        "--recipe", metavar="RECIPE", show_default=False,
        help="Recipe folder, .py file or module with inference() (default: the run's own).")]
    = None,
    data: Annotated[list[str] | None, typer.Option(
        "--data", metavar="PATH", show_default=False,
        help="A data manifest (.jsonl or corpus folder) it trained on, besides those its "
             "config names (repeatable).")] = None,
    parent: Annotated[str | None, typer.Option(
        "--parent", metavar="MODEL", show_default=False,
        help="The version it was fine-tuned from (NAME/VERSION).")] = None,
    description: Annotated[str, typer.Option("--description", metavar="TEXT",
                                             help="What this version is.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Register RUN's checkpoint as the next version of model NAME."""
    from tympan.registry.api import register

    with render.console().status("registering (rebuilding the model to check it loads)"):
        version = register(run, name, artifact=artifact, recipe=recipe, data=data or (),
                           parent=parent, description=description, store=options(ctx).store)
    if as_json:
        render.print_json(version.as_dict())
        return
    out = render.console()
    out.print(render.text(f"registered {version.uri}", style="bold"))
    out.print(f"  from run {version.run_id} ({version.artifact}, {render.size(version.size)}, "
              f"{_count(version.parameters)} parameters), recipe {version.recipe.get('entry')}")
    out.print(f"  load it with tympan.models.load({version.uri!r})")


@model_app.command("list")
def list_command(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", metavar="PROJECT",
                                                show_default=False,
                                                help="Only this project's models.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The registered models, their latest versions and aliases."""
    from tympan.registry.api import list_models

    found = list_models(project, store=options(ctx).store)
    if as_json:
        render.print_json([m.as_dict() for m in found])
        return
    if not found:
        render.console().print("no models registered yet: `tympan model register RUN --name "
                               "NAME` registers one")
        return
    table = render.table("model", "project", "latest", "aliases", "protected", "updated",
                         right=["latest"])
    for m in found:
        table.add_row(render.text(m.name), render.text(m.project), str(m.latest or "-"),
                      render.text(_aliases(m.aliases)), render.text(", ".join(m.protected)),
                      render.short_time(m.updated_at))
    render.console().print(table)


@model_app.command("show")
def show_command(ctx: typer.Context, ref: RefArg, as_json: JsonOpt = False) -> None:
    """A model's versions and aliases (NAME), or one version's details."""
    from tympan.registry.api import get, get_model, versions
    from tympan.store.models import parse_ref

    store = options(ctx).store
    parsed = parse_ref(ref)
    if parsed.version is None and parsed.alias is None:
        model, found = get_model(parsed.name, store=store), versions(parsed.name, store=store)
        if as_json:
            render.print_json(model.as_dict() | {"versions": [v.as_dict() for v in found]})
            return
        out = render.console()
        out.print(render.text(f"{model.name} (project {model.project})", style="bold"))
        out.print(f"aliases: {_aliases(model.aliases) or 'none'}; protected: "
                  f"{', '.join(model.protected) or 'none'}")
        table = render.table("version", "run", "aliases", "parameters", "size", "registered",
                             "by", right=["version", "parameters", "size"])
        for v in found:
            table.add_row(str(v.version), render.text(v.run_id), render.text(", ".join(
                v.aliases)), _count(v.parameters), render.size(v.size),
                render.short_time(v.created_at), render.text(v.created_by))
        out.print(table)
        return
    version = get(ref, store=store)
    if as_json:
        render.print_json(version.as_dict())
        return
    git = version.lineage.get("git") or {}
    study = version.lineage.get("study") or {}
    rows = [("version", version.uri), ("aliases", ", ".join(version.aliases) or "-"),
            ("project", version.project), ("run", version.run_id),
            ("weights", f"{version.artifact} ({render.size(version.size)}, sha256 "
                        f"{version.sha256[:12]})"),
            ("parameters", _count(version.parameters)),
            ("recipe", f"{version.recipe.get('entry')} ({version.recipe.get('hook')}())"),
            ("git", f"{git.get('commit') or '-'}" + (" (dirty)" if git.get("dirty") else "")),
            ("study", f"{study.get('name')} ({study.get('id')})" if study else "-"),
            ("parent", version.parent or "-"),
            ("registered", f"{render.local_time(version.created_at)} by {version.created_by}"),
            ("description", version.description or "-")]
    render.console().print(render.key_value_table(rows))


@model_app.command("alias")
def alias_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="NAME@ALIAS",
                                          help="The alias to set, move or delete.")],
    version: Annotated[int | None, typer.Argument(
        metavar="VERSION", show_default=False, help="The version it names from now on.")]
    = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    reason: ReasonOpt = "",
    evidence: Annotated[str | None, typer.Option(
        "--evidence", metavar="EVIDENCE", show_default=False,
        help="study:NAME, run:RUN, gate:RUN (a gate report that passed) or a URL.")] = None,
    admin: AdminOpt = False,
) -> None:
    """Point NAME@ALIAS at VERSION (or --delete it); every change is kept in its history."""
    from tympan.errors import InvalidInputError
    from tympan.registry.api import delete_alias, set_alias

    store = options(ctx).store
    if delete == (version is not None):
        raise InvalidInputError("give either a VERSION or --delete")
    if delete:
        event = delete_alias(target, reason=reason, evidence=evidence, admin=admin, store=store)
    else:
        assert version is not None
        event = set_alias(target, version, reason=reason, evidence=evidence, admin=admin,
                          store=store)
    render.console().print(_event_line(event))


@model_app.command("history")
def history_command(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="NAME[@ALIAS]",
                                          help="One alias, or every alias of a model.")],
    at: Annotated[str | None, typer.Option(
        "--at", metavar="TIME", show_default=False,
        help="Say which version held the alias at this time (ISO 8601, local time, e.g. "
             "'2026-11-30 14:00').")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every change of an alias: when, who, from which version to which, why, evidence."""
    from tympan.registry.api import as_time, history
    from tympan.registry.records import holder_at

    store = options(ctx).store
    events = history(target, store=store)
    held = None
    if at is not None:
        from tympan.registry.api import split_target

        name, alias = split_target(target)
        when = as_time(at)
        held = holder_at(events, when)
    if as_json:
        data: dict[str, Any] = {"events": [e.as_dict() for e in events]}
        if held is not None:
            data["at"] = {"time": when, "version": held[0],
                          "since": held[1].as_dict() if held[1] else None}
        render.print_json(data)
        return
    out = render.console()
    if held is not None:
        version, since = held
        moment = render.local_time(when, seconds=True)
        if version is None:
            out.print(render.text(f"{name}@{alias} named no version at {moment}", style="bold"))
        else:
            out.print(render.text(f"{name}@{alias} was version {version} at {moment}",
                                  style="bold"))
            assert since is not None
            out.print(f"  since {render.local_time(since.at, seconds=True)}: {since.action} by "
                      f"{since.actor} ({since.authority}): {since.reason or 'no reason given'}")
    if not events:
        out.print(f"no alias changes recorded for {target}")
        return
    from tympan.registry.records import evidence_label

    table = render.table("when", "alias", "change", "by", "authority", "reason", "evidence")
    for e in events:
        table.add_row(render.local_time(e.at, seconds=True), render.text(e.alias),
                      render.text(_change(e)), render.text(e.actor), render.text(e.authority),
                      render.text(e.reason or "-"), render.text(evidence_label(e.evidence)))
    out.print(table)


@model_app.command("protect")
def protect_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model.")],
    alias: Annotated[str, typer.Argument(metavar="ALIAS", help="The alias to protect.")],
    off: Annotated[bool, typer.Option("--off", help="Stop protecting it.")] = False,
    reason: ReasonOpt = "",
) -> None:
    """Protect ALIAS of model NAME (only an admin or a passed gate moves it); admin only."""
    from tympan.registry.api import protect

    event = protect(name, alias, protected=not off, reason=reason, store=options(ctx).store)
    render.console().print(_event_line(event))


def _event_line(event: Any) -> Text:
    from tympan.registry.records import evidence_label

    line = render.text(f"{event.model}@{event.alias}: {_change(event)}", style="bold")
    line.append(f" by {event.actor} ({event.authority})", style="")
    if event.evidence:
        line.append(f"; evidence {evidence_label(event.evidence)}", style="")
    return line


def _change(event: Any) -> str:
    if event.action in ("protect", "unprotect"):
        return f"{event.action}ed"
    if event.action == "delete":
        return f"deleted (was version {event.from_version})"
    if event.action == "set":
        return f"set to version {event.to_version}"
    return f"moved from version {event.from_version} to {event.to_version}"


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"@{alias} -> {version}" for alias, version in sorted(aliases.items()))


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


@model_app.command("card")
def card_command(
    ctx: typer.Context, ref: RefArg,
    out: Annotated[str | None, typer.Option(
        "--out", metavar="FILE", show_default=False,
        help="Where to write the Markdown (default: model-cards/NAME-vVERSION.md).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the version's model card (Markdown, generated from the store) and print its path."""
    from tympan.registry.card import card, write_card

    if as_json:
        render.print_json(card(ref, store=options(ctx).store))
        return
    path = write_card(ref, out, store=options(ctx).store)
    render.console().print(f"model card: {path}")


@model_app.command("export")
def export_command(
    ctx: typer.Context, ref: RefArg,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT",
                                     help="The export format (onnx).")] = "onnx",
    exporter: Annotated[str, typer.Option(
        "--exporter", metavar="EXPORTER",
        help="auto (torchscript, then dynamo when torchscript fails or fails the parity "
             "check), torchscript or dynamo.")] = "auto",
    out: Annotated[str | None, typer.Option(
        "--out", metavar="FILE", show_default=False,
        help="Also write the .onnx file here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a version to ONNX (dynamic batch and time axes), check it against torch on real
    speech, and record the parity and speed on the version (shown on its card)."""
    from tympan.errors import InvalidInputError
    from tympan.registry.export import export_onnx

    if fmt != "onnx":
        raise InvalidInputError(f"--format must be onnx, got {fmt!r}")
    result = export_onnx(ref, store=options(ctx).store, exporter=exporter, out=out)
    if as_json:
        render.print_json(result.report | {"uri": result.uri})
        return
    r = result.report
    lines = [f"exported {result.uri} to ONNX with {r['exporter']} (run {result.run_id}): "
             f"max abs error {r['max_abs_error']:.2g}, answers agree {r['agreement']:.0%} on "
             f"{r['clips_seconds']} s of speech; eager {r['eager_ms']:.2f} ms, onnxruntime "
             f"{r['onnxruntime_ms']:.2f} ms ({r['speedup']:.2f}x)"]
    if r["fallback_from"]:
        lines.append(f"fell back from {r['fallback_from']}")
    for line in lines:
        render.console().print(line, markup=False, soft_wrap=True)
