"""``tympan ui``: the web UI over a local store, on 127.0.0.1 by default.

Every request needs a token, even on loopback (other users of the machine can reach it): a
secret made at launch, carried by the URL it prints and opens, as Jupyter does.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tympan.cli.context import options
from tympan.errors import InvalidInputError
from tympan.server.config import DEFAULT_PORT, ServerConfig, is_loopback, new_launch_token

AllowHost = Annotated[
    list[str] | None,
    typer.Option("--allow-host", metavar="NAME", show_default=False,
                 help="Also answer requests for this host name, e.g. a reverse proxy's "
                      "(repeatable; *.example.org matches its subdomains). Loopback names "
                      "and the --host address are always allowed."),
]


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
        typer.Option("--auth", help="Also accept the store's tokens (see `tympan token "
                                    "create`), e.g. to share the UI on the lab network."),
    ] = False,
    no_open: Annotated[
        bool, typer.Option("--no-open", help="Do not open a browser tab."),
    ] = False,
    allow_host: AllowHost = None,
) -> None:
    """Serve the web UI and JSON API over the store, print its sign-in URL and open it."""
    from tympan.cli.serve import serve

    if not auth and not is_loopback(host):
        raise InvalidInputError(
            f"refusing to serve the store on {host} with only this launch's admin token: to "
            "share it on a network, add --auth and give each person a token of their own "
            "(`tympan token create --scope read`), or bind 127.0.0.1"
        )
    where = store or options(ctx).store or _default_store()
    config = ServerConfig(store=where, auth=auth, host=host, port=port,
                          launch_token=new_launch_token(), allowed_hosts=tuple(allow_host or ()))
    serve(config, label="ui", open_browser=not no_open)


def _default_store() -> str:
    from tympan import settings

    return settings.get("TYMPAN_STORE")
