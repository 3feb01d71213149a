"""``tympan ui``: the web UI over a local store, on 127.0.0.1 by default."""

from __future__ import annotations

from typing import Annotated

import typer

from tympan.cli.context import options
from tympan.errors import InvalidInputError
from tympan.server.config import DEFAULT_PORT, ServerConfig, is_loopback


def ui_command(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option("--store", metavar="STORE", show_default=False,
                     help="The store to serve (default: the global --store, TYMPAN_STORE, "
                          "else ./.tympan)."),
    ] = None,
    host: Annotated[
        str,
        typer.Option("--host", metavar="HOST",
                     help="Address to listen on. A non-loopback address needs --auth."),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", metavar="PORT", min=0, max=65535,
                     help="Port to listen on (0 picks a free one)."),
    ] = DEFAULT_PORT,
    auth: Annotated[
        bool,
        typer.Option("--auth", help="Require a token (see `tympan token create`) even on "
                                    "loopback."),
    ] = False,
    no_open: Annotated[
        bool, typer.Option("--no-open", help="Do not open a browser tab."),
    ] = False,
) -> None:
    """Serve the web UI and JSON API over the store, print the URL and open it."""
    from tympan.cli.serve import serve

    if not auth and not is_loopback(host):
        raise InvalidInputError(
            f"refusing to serve the store on {host} without authentication: anyone who can "
            f"reach {host}:{port} could read every run; bind 127.0.0.1 or add --auth "
            "(and create tokens with `tympan token create`)"
        )
    where = store or options(ctx).store or _default_store()
    config = ServerConfig(store=where, auth=auth, host=host, port=port)
    serve(config, label="ui", open_browser=not no_open)


def _default_store() -> str:
    from tympan import settings

    return settings.get("TYMPAN_STORE")
