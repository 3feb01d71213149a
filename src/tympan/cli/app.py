"""The ``tympan`` command: the command tree, global options, and one-line errors.

``main()`` runs the Typer app with ``standalone_mode=False`` so that errors come back here:
a ``TympanError`` is printed as ``error: <message>`` on stderr with exit status 1 and no
traceback; a usage error is printed the way click prints it, with exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from tympan import __version__
from tympan.cli.ablate import ablate_command
from tympan.cli.context import CliOptions
from tympan.cli.corpus import corpus_app
from tympan.cli.db import db_app
from tympan.cli.diff import diff_command
from tympan.cli.export import export_command
from tympan.cli.findings import findings_app
from tympan.cli.model import model_app
from tympan.cli.probe import probe_app
from tympan.cli.report import report_command
from tympan.cli.run import run_command
from tympan.cli.runs import runs_command
from tympan.cli.server import server_command
from tympan.cli.show import show_command
from tympan.cli.study import study_command
from tympan.cli.token import token_app
from tympan.cli.ui import ui_command
from tympan.errors import TympanError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer depends on click itself
    from click.exceptions import ClickException  # type: ignore[no-redef]

app = typer.Typer(
    name="tympan",
    help="tympan: the lab notebook that listens. List, inspect, compare and export runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("runs")(runs_command)
app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                     "help_option_names": []})(run_command)
app.command("show")(show_command)
app.command("diff")(diff_command)
app.command("export")(export_command)
app.command("ablate")(ablate_command)
app.command("study")(study_command)
app.add_typer(db_app, name="db")
app.add_typer(corpus_app, name="corpus")
app.command("report")(report_command)
app.add_typer(findings_app, name="findings")
app.command("ui")(ui_command)
app.command("server")(server_command)
app.add_typer(token_app, name="token")
app.add_typer(probe_app, name="probe")
app.add_typer(model_app, name="model")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tympan {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    store: Annotated[
        str | None,
        typer.Option("--store", envvar="TYMPAN_STORE", metavar="STORE", show_default=False,
                     help="Where runs are stored: a directory, sqlite:///FILE.db or "
                          "postgresql+psycopg://USER@HOST/DB. Default: ./.tympan"),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True,
                     help="Print tympan's version and exit."),
    ] = False,
) -> None:
    """tympan: the lab notebook that listens. List, inspect, compare and export runs."""
    ctx.obj = CliOptions(store=store or None)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``tympan`` console script: run the CLI on ``argv`` (default ``sys.argv[1:]``) and
    return the exit status (the console-script wrapper passes it to ``sys.exit``)."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="tympan", standalone_mode=False)
    except TympanError as exc:
        print_error(str(exc))
        return 1
    except ClickException as exc:  # usage errors (exit 2), file errors
        exc.show()
        return exc.exit_code
    except typer.Abort:
        print_error("aborted")
        return 1
    # Without standalone mode, --help and --version come back as their exit status.
    return result if isinstance(result, int) else 0


def print_error(message: str) -> None:
    """``error: <message>`` as one line on stderr."""
    one_line = " ".join(message.split()) or "unknown error"
    sys.stderr.write(f"error: {one_line}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
