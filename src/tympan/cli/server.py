"""``tympan server``: the team server (token auth always on), e.g. PostgreSQL + S3."""

from __future__ import annotations

from typing import Annotated

import typer

from tympan.cli.context import options
from tympan.cli.ui import AllowHost, _default_store
from tympan.server.config import DEFAULT_PORT, ServerConfig


def server_command(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option("--store", metavar="STORE", show_default=False,
                     help="The store to serve, e.g. postgresql+psycopg://USER@HOST/DB "
                          "(created if it holds no store yet)."),
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option("--artifacts", metavar="URL", show_default=False,
                     help="Artifact root for a new store: a path or fsspec URL such as "
                          "s3://bucket/tympan. An existing store must already use it."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to listen on."),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", metavar="PORT", min=0, max=65535,
                     help="Port to listen on (0 picks a free one)."),
    ] = DEFAULT_PORT,
    max_body_mb: Annotated[
        float,
        typer.Option("--max-body-mb", metavar="MB", min=0.001,
                     help="Largest request body accepted, in MiB (larger ones get 413)."),
    ] = 256.0,
    allow_host: AllowHost = None,
) -> None:
    """Serve the JSON API, remote logging and the web UI with token auth always on."""
    from tympan.cli.serve import serve

    where = store or options(ctx).store or _default_store()
    config = ServerConfig(store=where, artifacts=artifacts, auth=True, host=host, port=port,
                          max_body_bytes=int(max_body_mb * 1024 * 1024), create=True,
                          allowed_hosts=tuple(allow_host or ()))
    serve(config, label="server", access_log=True)
