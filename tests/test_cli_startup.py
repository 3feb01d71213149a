"""The CLI answers at once: each command imports only what it needs (issue 16, item 6).

Each check runs the command in a fresh interpreter, exactly as the console script does, and
reads ``sys.modules`` afterwards: a module that a command needs only sometimes (scipy for
statistics, numpy for a metric's full history, torch, FastAPI, Ray) must not be loaded by
``tympan --help``, ``tympan runs`` or ``tympan show``. Speed itself is measured in
benchmarks/cli_startup.py, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tympan

NEVER_AT_START = {"scipy", "torch", "fastapi", "starlette", "ray", "uvicorn", "alembic",
                  "pandas", "matplotlib", "soundfile",
                  "pydantic"}  # typer checks plain option values with it (tympan.cli.values)
NOT_FOR_HELP = {"sqlalchemy", "numpy", "rich"}  # help prints plain text and reads no store

SCRIPT = """
import contextlib, io, json, sys
from tympan.cli.app import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": out.getvalue(),
                  "modules": sorted({m.split('.')[0] for m in sys.modules})}))
"""


def cli_modules(*args: str, store: str | None = None) -> tuple[str, set[str]]:
    """(what the command printed, the top-level modules loaded when it returned)."""
    env_args = ["--store", store] if store else []
    done = subprocess.run([sys.executable, "-c", SCRIPT, *env_args, *args],
                          capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 0, done.stderr
    return result["out"], set(result["modules"])


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    where = str(tmp_path_factory.mktemp("startup") / "store")
    with tympan.init(project="asr", store=where, config={"encoder": "gru"},
                     system_metrics=False, console=False) as run:
        for step in range(3):
            run.log({"train/loss": 1.0 / (step + 1)}, step=step)
    return where, run.id


def test_help_loads_neither_scipy_torch_fastapi_ray_nor_the_store() -> None:
    out, modules = cli_modules("--help")
    assert "runs" in out and "model" in out
    assert not modules & (NEVER_AT_START | NOT_FOR_HELP), modules


def test_group_help_loads_only_its_group() -> None:
    out, modules = cli_modules("model", "--help")
    assert "register" in out
    assert not modules & (NEVER_AT_START | NOT_FOR_HELP), modules


def test_command_help_loads_no_store_nor_rich() -> None:
    out, modules = cli_modules("runs", "--help")
    assert "--sort" in out
    assert not modules & (NEVER_AT_START | NOT_FOR_HELP), modules


def test_runs_and_show_read_the_store_without_numpy_scipy_or_pydantic(
    small_store: tuple[str, str],
) -> None:
    store, run_id = small_store
    out, modules = cli_modules("runs", store=store)
    assert run_id in out
    assert not modules & (NEVER_AT_START | {"numpy"}), modules
    out, modules = cli_modules("show", run_id, store=store)
    assert "train/loss" in out
    assert not modules & (NEVER_AT_START | {"numpy"}), modules


def test_runs_and_show_read_a_sqlite_store_without_sqlalchemy_once_compiled(
    small_store: tuple[str, str],
) -> None:
    """The first command compiles its reads with SQLAlchemy into TYMPAN_SQL_CACHE (a folder
    per test, see conftest); later ones run that SQL through sqlite3 alone."""
    store, run_id = small_store
    for args in (("runs",), ("runs", "--project", "asr", "--status", "finished"),
                 ("show", run_id), ("show", run_id[:4])):
        cli_modules(*args, store=store)  # compiles what is missing
        out, modules = cli_modules(*args, store=store)
        assert run_id in out
        assert "sqlalchemy" not in modules, args


def test_every_command_of_the_lazy_tree_builds() -> None:
    import typer

    from tympan.cli.app import COMMANDS, app

    root = typer.main.get_command(app)
    assert list(root.list_commands(None)) == list(COMMANDS)  # type: ignore[attr-defined]
    for name in COMMANDS:
        command = root.get_command(None, name)  # type: ignore[attr-defined]
        assert command is not None and command.name == name
        assert command.help, f"tympan {name} has no help text"
    assert root.get_command(None, "no-such-command") is None  # type: ignore[attr-defined]
