"""The layer order of shared/DESIGN.md, checked on every module's imports (read with ast).

    faces     cli, server, serve, __main__ (python -m tympan)
    features  study, probe, registry (with its facade tympan.models), loop, integrations
    core      track, records, audio, config, schedules, entry
    storage   store
    base      errors, settings, ids, extras (imported by every layer)

A module may import its own layer and the layers below it, never one above. Imports inside
functions count too: a lazy import is still an arrow in the picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tympan"

LAYERS = {
    "faces": 4, "features": 3, "core": 2, "storage": 1, "base": 0,
}
PLACE = {
    "cli": "faces", "server": "faces", "serve": "faces", "__main__": "faces",
    "study": "features", "probe": "features", "registry": "features", "loop": "features",
    "integrations": "features", "models": "features",
    "track": "core", "records": "core", "audio": "core", "config": "core",
    "schedules": "core", "entry": "core",
    "store": "storage",
    "errors": "base", "settings": "base", "ids": "base", "extras": "base",
}


# Arrows that run up on purpose, each with why. Keep this short: an entry here is a debt.
EXCEPTIONS = {
    # Run.register_model is a convenience over the public registry API (tympan.models), loaded
    # on first call; the registry itself never reaches back into a live Run.
    ("track/run.py", "tympan.models"),
}


def top_part(module: str) -> str | None:
    """``tympan.records.table`` -> ``records``; None for ``tympan`` itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == "tympan" and len(parts) > 1 else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every tympan import in a source file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from tympan import settings` imports the module tympan.settings; `from tympan
            # import __version__` only the facade
            names = [f"{base}.{a.name}" if base == "tympan" and _is_module(a.name) else base
                     for a in node.names]
            found += [(node.lineno, name) for name in names]
    return [(line, name) for line, name in found if name.split(".")[0] == "tympan"]


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_every_package_has_a_layer() -> None:
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in sources()}
    unplaced = sorted(tops - set(PLACE) - {"__init__"})
    assert not unplaced, f"give these a layer in tests/test_layers.py (and DESIGN.md): {unplaced}"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_never_run_up_the_layers(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if own == "__init__":
        return  # `tympan` itself is the public facade over the tracking API
    level = LAYERS[PLACE[own]]
    upward = []
    where = str(path.relative_to(PACKAGE))
    for line, name in imports(path):
        other = top_part(name)
        if other is None or other == own or (where, name) in EXCEPTIONS:
            continue
        if LAYERS[PLACE[other]] > level:
            upward.append(f"line {line}: {name} ({PLACE[other]}) from {PLACE[own]}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_route_modules_spell_each_scope_dependency_once() -> None:
    """Reader, Writer and Admin live in routes/_read.py: a route module that builds its own
    ``require(...)`` alias is a second spelling of who may call it."""
    routes = PACKAGE / "server" / "routes"
    spelled = sorted(
        f"{path.name}:{node.lineno}"
        for path in routes.glob("*.py") if path.name != "_read.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require")
    assert spelled == []
