"""tympan.cli.values: plain option values are checked without pydantic, with typer's results.

Every value below goes through both checkers, tympan's and typer's own (pydantic), on the
same real typer parameters: each must give the same value, or the same error message.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated

import pytest
import typer
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from tympan.cli.values import PlainValue, plain_values

app = typer.Typer(add_completion=False)


@app.command()
def command(
    name: Annotated[str, typer.Option()] = "x",
    note: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option()] = None,
    count: Annotated[int | None, typer.Option(min=1)] = None,
    offset: Annotated[int, typer.Option()] = 0,
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    rate: Annotated[float, typer.Option(min=0.001)] = 1.0,
    scale: Annotated[float, typer.Option()] = 0.0,
    flag: Annotated[bool, typer.Option("--flag")] = False,
) -> None:
    """A command with one option of each plain kind."""


VALUES: dict[str, list[object]] = {
    "name": ["gru", "", " spaced ", "ünïcode", 3, None],
    "note": ["a note", None],
    "tag": [["a", "b"], ("a",), [], "a", [1, "b"], None],
    "count": ["3", "1", "0", "-2", "007", "+4", " 5", "1.0", "1.5", "1e3", "x", "", 5, True,
              None],
    "offset": ["0", "-0", "-12", "12345678901234567890", "1_000", 3.0, None],
    "port": ["65535", "65536", "0", "-1", "80"],
    "rate": ["0.5", "0.001", "0.0001", "1e-2", "1E3", ".5", "5.", "-1", "nan", "inf", "1,5",
             "x", 2, 0, None],
    "scale": ["-.5", "+1", "1e", "-1e-3", " 2 ", 1.5, True],
    "flag": [True, False, "true", "1", "no", None],
}


def outcome(checker, value, param, ctx):
    try:
        return "value", checker.coerce(value, param=param, ctx=ctx)
    except BadParameter as exc:
        return "error", exc.format_message()


@pytest.mark.parametrize("name", sorted(VALUES))
def test_plain_values_match_typers_own_checker(name: str) -> None:
    cli = typer.main.get_command(app)
    ctx = typer.Context(cli)
    param = next(p for p in cli.params if p.name == name)
    ours = PlainValue(param.type_descriptor)
    theirs = build_runtime_param(param.type_descriptor)
    for value in VALUES[name]:
        got, want = outcome(ours, value, param, ctx), outcome(theirs, value, param, ctx)
        assert got == want, (name, value)
        assert type(got[1]) is type(want[1]), (name, value)


def test_every_plain_option_and_help_gets_the_plain_checker() -> None:
    cli = plain_values(typer.main.get_command(app))
    ctx = typer.Context(cli)
    assert all(isinstance(p._runtime_param, PlainValue) for p in cli.params)
    assert isinstance(cli.get_help_option(ctx)._runtime_param, PlainValue)


def test_other_kinds_keep_typers_checker() -> None:
    other = typer.Typer(add_completion=False)

    @other.command()
    def paths(where: Annotated[typer.FileText, typer.Option()] = None,
              folder: Annotated[str, typer.Option(parser=str.upper)] = "a") -> None:
        """Options whose values typer must check itself."""

    cli = plain_values(typer.main.get_command(other))
    assert all(p._runtime_param is None for p in cli.params)


def test_the_cli_says_what_typer_says_about_a_bad_value(tmp_path) -> None:
    for bad, message in (("x", "Input should be a valid integer"),
                         ("0", "Input should be greater than or equal to 1")):
        done = subprocess.run([sys.executable, "-m", "tympan.cli.app", "--store",
                               str(tmp_path / "none"), "runs", "--limit", bad],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert f"Invalid value for '--limit' / '-n': {message}" in done.stderr
