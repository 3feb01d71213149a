"""``tympan token create|list|revoke``: API tokens for the team server."""

from __future__ import annotations

from typing import Annotated

import typer

from tympan.cli import render
from tympan.cli.context import opened_store

token_app = typer.Typer(
    name="token",
    help="Create, list and revoke API tokens of the team server.",
    no_args_is_help=True,
)


@token_app.command("create")
def create_command(
    ctx: typer.Context,
    scope: Annotated[
        str,
        typer.Option("--scope", metavar="read|write|admin",
                     help="read: see runs; write: also log runs; admin: everything."),
    ],
    project: Annotated[
        str | None,
        typer.Option("--project", metavar="PROJECT", show_default=False,
                     help="Only this project (default: every project)."),
    ] = None,
    name: Annotated[
        str,
        typer.Option("--name", metavar="NAME", help="A note saying who or what holds it."),
    ] = "",
) -> None:
    """Create a token and print it (only this once: the store keeps only its hash)."""
    from tympan.store import tokens

    with opened_store(ctx) as store, store.write() as conn:
        text, token = tokens.create(conn, scope, project=project, name=name)
    typer.echo(text)
    where = f"project {project}" if project else "every project"
    typer.echo(f"token {token.id}: scope {scope}, {where}. Keep it now: it is not shown "
               "again.", err=True)


@token_app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tokens as JSON.")] = False,
) -> None:
    """List tokens (ids, scopes, projects, use and revocation; never the secrets)."""
    from tympan.store import tokens

    with opened_store(ctx) as store, store.read() as conn:
        found = tokens.all_tokens(conn)
    if as_json:
        render.print_json([token.__dict__ for token in found])
        return
    out = render.console()
    if not found:
        out.print(render.text("no tokens yet: `tympan token create --scope read`", style="dim"))
        return
    table = render.table("id", "scope", "project", "name", "created", "last used", "status")
    for token in found:
        status = (render.text(f"revoked {render.short_time(token.revoked_at)}", style="red")
                  if token.revoked else render.text("active", style="green"))
        table.add_row(token.id, token.scope, render.text(token.project or "(all)"),
                      render.text(token.name or None), render.short_time(token.created_at),
                      render.short_time(token.last_used_at), status)
    out.print(table)


@token_app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (see list).")],
) -> None:
    """Revoke a token: the server refuses it from the next request on."""
    from tympan.store import tokens

    with opened_store(ctx) as store, store.write() as conn:
        token = tokens.revoke(conn, token_id)
    typer.echo(f"revoked token {token.id} ({token.scope}"
               f"{', project ' + token.project if token.project else ''})")
