"""Every command, argument and option of the `tympan` CLI is documented in docs/cli.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from tympan.cli.app import app

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
GLOBAL = "Global options"


def command_tree(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(section title, click command) for the root and every group and command below it."""
    yield (" ".join(("tympan", *path)) if path else GLOBAL), command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from command_tree(sub, (*path, name))


def sections(text: str) -> dict[str, str]:
    """Level-2 headings (backticks dropped) -> the text under them."""
    out: dict[str, str] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip().strip("`").strip()
            out[title] = ""
        elif title is not None:
            out[title] += line + "\n"
    return out


def _mentioned(name: str, body: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", body) is not None


def missing_from_docs(root: Any, text: str) -> list[str]:
    """What of the command tree under ``root`` the markdown ``text`` does not document."""
    docs = sections(text)
    missing = []
    for title, command in command_tree(root):
        body = docs.get(title)
        if body is None:
            missing.append(f"no section '## `{title}`'" if title != GLOBAL
                           else f"no section '## {GLOBAL}'")
            continue
        for param in command.params:
            if param.param_type_name == "argument":
                names = [param.metavar or param.name.upper()]
            else:
                names = [*param.opts, *param.secondary_opts]
            missing += [f"{title}: {name}" for name in names if not _mentioned(name, body)]
    return missing


def test_every_command_and_option_is_documented() -> None:
    missing = missing_from_docs(typer.main.get_command(app), DOCS.read_text(encoding="utf-8"))
    assert not missing, "document these in docs/cli.md: " + "; ".join(missing)


def test_the_check_fails_when_a_command_is_not_documented() -> None:
    root = typer.main.get_command(app)
    text = DOCS.read_text(encoding="utf-8")
    without_diff = text.replace("## `tympan diff`", "## something else")
    assert "no section '## `tympan diff`'" in missing_from_docs(root, without_diff)


def test_the_check_fails_when_an_option_is_not_documented() -> None:
    root = typer.main.get_command(app)
    text = DOCS.read_text(encoding="utf-8")
    without_desc = re.sub(r"--desc(?![\w-])", "--descending", text)
    assert "tympan runs: --desc" in missing_from_docs(root, without_desc)
    without_store = text.replace("--store", "--place")
    assert f"{GLOBAL}: --store" in missing_from_docs(root, without_store)


def test_the_tree_covers_nested_groups() -> None:
    titles = [title for title, _ in command_tree(typer.main.get_command(app))]
    assert {"tympan runs", "tympan show", "tympan diff", "tympan export", "tympan db",
            "tympan db upgrade", "tympan db current", GLOBAL} <= set(titles)
