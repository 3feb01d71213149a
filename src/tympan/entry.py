"""Entry points: what ``tympan run TARGET`` and a study's trials execute.

A target is a recipe directory (``recipes/asr_ctc``: its ``train.py``), a Python file, or a
module name (``recipes.asr_ctc``, ``mypkg.train``). Files inside packages run as modules, so
their package imports work the same as with ``python -m``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import runpy
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tympan.errors import InvalidInputError

SCRIPT_NAMES = ("train.py", "__main__.py")  # what a recipe directory runs, in this order


@dataclass(frozen=True)
class EntryPoint:
    """A resolved target: a module run from ``root`` (on ``sys.path``), or a bare script."""

    module: str | None
    script: Path | None
    root: Path

    @property
    def name(self) -> str:
        return self.module or str(self.script)

    def command(self, args: Sequence[str] = ()) -> list[str]:
        """The argv that runs this entry point in a fresh interpreter (cwd: ``root``)."""
        head = ["-m", self.module] if self.module else [str(self.script)]
        return [sys.executable, *head, *args]

    def run(self, args: Sequence[str] = ()) -> None:
        """Run it in this process as ``__main__`` with ``args`` as its command line."""
        with _as_main(self, args):
            if self.module:
                runpy.run_module(self.module, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(str(self.script), run_name="__main__")


@contextmanager
def _as_main(entry: EntryPoint, args: Sequence[str]) -> Iterator[None]:
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [entry.name, *args]
    sys.path.insert(0, str(entry.root))
    try:
        yield
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def resolve_entry(target: str, cwd: str | os.PathLike[str] | None = None) -> EntryPoint:
    """The entry point ``target`` names; an ``InvalidInputError`` saying why when none."""
    base = Path(cwd or os.getcwd()).resolve()
    path = (base / target).resolve()
    if path.is_dir():
        for script in SCRIPT_NAMES:
            if (path / script).is_file():
                return _from_file(path / script)
        raise InvalidInputError(f"recipe directory {target} has no {' or '.join(SCRIPT_NAMES)}")
    if path.is_file():
        if path.suffix != ".py":
            raise InvalidInputError(f"{target} is not a Python file (.py)")
        return _from_file(path)
    if target.endswith(".py") or os.sep in target:
        raise InvalidInputError(f"{target} does not exist (relative to {base})")
    return _from_module(target, base)


def _from_file(path: Path) -> EntryPoint:
    """A file in a package becomes ``package.module`` run from above the outermost package."""
    packages: list[str] = []
    folder = path.parent
    while (folder / "__init__.py").is_file():
        packages.insert(0, folder.name)
        folder = folder.parent
    if packages:  # ``-m pkg`` runs pkg/__main__.py; ``-m pkg.train`` runs pkg/train.py
        module = ".".join(packages if path.name == "__main__.py" else [*packages, path.stem])
        return EntryPoint(module=module, script=None, root=folder)
    return EntryPoint(module=None, script=path, root=path.parent)


def _from_module(name: str, base: Path) -> EntryPoint:
    # A module under ``base`` is found on disk, not by importing its packages (an already
    # imported package of the same name elsewhere would hide it).
    local = base.joinpath(*name.split("."))
    if (local / "__init__.py").is_file():
        for sub in ("train", "__main__"):
            if (local / f"{sub}.py").is_file():
                return _from_file(local / f"{sub}.py")
        raise InvalidInputError(f"package {name} has no train or __main__ module to run")
    if local.with_suffix(".py").is_file():
        return _from_file(local.with_suffix(".py"))
    sys.path.insert(0, str(base))
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:  # a package
            for sub in ("train", "__main__"):
                if importlib.util.find_spec(f"{name}.{sub}") is not None:
                    return EntryPoint(module=f"{name}.{sub}" if sub == "train" else name,
                                      script=None, root=base)
            raise InvalidInputError(f"package {name} has no train or __main__ module to run")
    except (ImportError, ValueError) as exc:
        raise InvalidInputError(f"cannot find module {name}: {exc}") from None
    finally:
        sys.path.remove(str(base))
    if spec is None:
        shipped = shipped_recipes()
        if name in shipped:  # `tympan run asr_ctc` from an installed wheel
            return _from_module(f"recipes.{name}", base)
        names = ", ".join(shipped) or "none installed"
        raise InvalidInputError(f"no recipe {name!r}: not a file, a directory or an importable "
                                f"module (looked in {base} and on sys.path); the recipes that "
                                f"ship with tympan: {names}")
    return EntryPoint(module=name, script=None, root=base)


def shipped_recipes() -> list[str]:
    """The recipes installed with tympan (the ``recipes`` package of its wheel or checkout)."""
    try:
        spec = importlib.util.find_spec("recipes")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(
        entry.name for folder in spec.submodule_search_locations
        for entry in Path(folder).iterdir()
        if (entry / "__init__.py").is_file() and (entry / "train.py").is_file()
    )


def recipe_of(record: Any) -> str | None:
    """The recipe that trained ``record``: its ``recipe`` config key, else its command line."""
    config = record.config or {}
    if isinstance(config.get("recipe"), str):
        return config["recipe"]
    argv = ((record.environment() or {}).get("command") or {}).get("argv")
    if isinstance(argv, list) and argv:
        first = str(argv[0])  # the script's path (also under `python -m`), or a module name
        if first.endswith(".py") or re.fullmatch(r"[A-Za-z_][\w.]*", first):
            return first
    return None
