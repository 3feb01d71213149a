"""The ``tympan`` command: the command tree, global options, and one-line errors.

``main()`` runs the Typer app with ``standalone_mode=False`` so that errors come back here:
a ``TympanError`` is printed as ``error: <message>`` on stderr with exit status 1 and no
traceback; a usage error is printed the way click prints it, with exit status 2.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo

from tympan import __version__
from tympan.cli.context import CliOptions
from tympan.cli.values import plain_values
from tympan.errors import TympanError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer depends on click itself
    from click.exceptions import ClickException  # type: ignore[no-redef]

# The command tree, in the order `tympan --help` lists it: name -> "module:attribute", a
# command function or a Typer sub-app. A command's module is imported only when that command
# runs (or help lists it), so `tympan runs` never pays for scipy, torch, FastAPI or Ray.
COMMANDS: dict[str, str] = {
    "runs": "tympan.cli.runs:runs_command",
    "run": "tympan.cli.run:run_command",
    "show": "tympan.cli.show:show_command",
    "diff": "tympan.cli.diff:diff_command",
    "export": "tympan.cli.export:export_command",
    "edit": "tympan.cli.manage:edit_command",
    "archive": "tympan.cli.manage:archive_command",
    "unarchive": "tympan.cli.manage:unarchive_command",
    "delete": "tympan.cli.manage:delete_command",
    "history": "tympan.cli.manage:history_command",
    "ablate": "tympan.cli.ablate:ablate_command",
    "study": "tympan.cli.study:study_command",
    "db": "tympan.cli.db:db_app",
    "corpus": "tympan.cli.corpus:corpus_app",
    "report": "tympan.cli.report:report_command",
    "findings": "tympan.cli.findings:findings_app",
    "quantify": "tympan.cli.quantify:quantify_command",
    "ui": "tympan.cli.ui:ui_command",
    "server": "tympan.cli.server:server_command",
    "serve": "tympan.cli.serving:serve_command",
    "sync": "tympan.cli.sync:sync_command",
    "token": "tympan.cli.token:token_app",
    "probe": "tympan.cli.probe:probe_app",
    "model": "tympan.cli.model:model_app",
    "import": "tympan.cli.importer:import_app",
    "loop": "tympan.cli.loop:loop_app",
}
# `tympan run RECIPE ...` hands the rest of the line, --help included, to the recipe.
CONTEXT_SETTINGS = {"run": {"allow_extra_args": True, "ignore_unknown_options": True,
                            "help_option_names": []}}


class LazyCommands(MutableMapping[str, Any]):
    """The root group's commands, each built from its module on first access."""

    def __init__(self, group: TyperGroup) -> None:
        self.group = group
        self.built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            if name not in COMMANDS:
                raise KeyError(name)
            self.built[name] = self._build(name)
        return self.built[name]

    def _build(self, name: str) -> Any:
        module, _, attribute = COMMANDS[name].partition(":")
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            command = typer.main.get_group_from_info(
                TyperInfo(target), pretty_exceptions_short=True, suggest_commands=True,
                rich_markup_mode=self.group.rich_markup_mode)
            command.name = name
            return plain_values(command)
        info = CommandInfo(name=name, callback=target, context_settings=CONTEXT_SETTINGS.get(name))
        return plain_values(typer.main.get_command_from_info(
            info, pretty_exceptions_short=True, rich_markup_mode=self.group.rich_markup_mode))

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("tympan's commands cannot be removed")

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.built if name not in COMMANDS)

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self.built))


class TympanGroup(TyperGroup):
    """The root command: its sub-commands load lazily (see ``COMMANDS``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = LazyCommands(self)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)


app = typer.Typer(
    name="tympan",
    help="tympan: the lab notebook that listens. List, inspect, compare and export runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=TympanGroup,
    # Plain help and usage errors, as click prints them: typer's rich formatting would load
    # rich's markdown and traceback modules, a third of `tympan --help`'s time.
    rich_markup_mode=None,
)


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
    command = plain_values(typer.main.get_command(app), subcommands=False)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="tympan", standalone_mode=False)
    except TympanError as exc:
        print_error(str(exc))
        return 1
    except ModuleNotFoundError as exc:  # an optional extra that is not installed
        from tympan.extras import missing_extra

        missing = missing_extra(exc)
        if missing is None:
            raise
        print_error(str(missing))
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
