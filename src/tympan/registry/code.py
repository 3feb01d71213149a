"""The recipe code a version is rebuilt with: snapshotted at registration, imported at load.

Registering zips the recipe's package (its folder's ``.py`` and config files, and the
``__init__.py`` of the packages above it) into a content-addressed blob, deterministically,
so the same code is stored once. Loading imports the recipe as installed when its entry file
is byte-identical to the snapshot, and otherwise imports the snapshot itself (extracted to a
cache folder): a model loads on a machine without the recipe, and never with code that
changed since it was registered.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import os
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from tympan.entry import EntryPoint, resolve_entry
from tympan.errors import InvalidInputError

SUFFIXES = (".py", ".yaml", ".yml", ".json", ".toml", ".txt")
MAX_BYTES = 4 << 20  # a recipe, not a data set: refuse to snapshot more than this
_STAMP = (2020, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same code gives the same blob
_loaded: dict[str, ModuleType] = {}
_lock = threading.Lock()


def snapshot(recipe: str) -> tuple[bytes, dict[str, Any]]:
    """(zip bytes, what the version records about its recipe) for the recipe ``recipe``."""
    entry = resolve_entry(recipe)
    source = _entry_file(entry)
    files = _files(entry, source)
    total = sum(p.stat().st_size for _, p in files)
    if total > MAX_BYTES:
        raise InvalidInputError(f"recipe {recipe}'s folder holds {total / 1e6:.1f} MB of code "
                                f"and config files (the snapshot takes at most "
                                f"{MAX_BYTES >> 20} MB): keep data out of the recipe folder")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, _STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue(), {
        "entry": recipe,
        "module": entry.module,
        "file": source.relative_to(entry.root).as_posix(),
        "hook": "inference",
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "files": [name for name, _ in files],
    }


def _entry_file(entry: EntryPoint) -> Path:
    if entry.script is not None:
        return entry.script
    sys.path.insert(0, str(entry.root))
    try:
        spec = importlib.util.find_spec(entry.module) if entry.module else None
    except (ImportError, ValueError):
        spec = None
    finally:
        sys.path.remove(str(entry.root))
    if spec is None or not spec.has_location or spec.origin is None:
        raise InvalidInputError(f"cannot find the source file of module {entry.module}")
    return Path(spec.origin)


def _files(entry: EntryPoint, source: Path) -> list[tuple[str, Path]]:
    folder = source.parent
    found = {p for p in folder.rglob("*") if p.is_file() and p.suffix in SUFFIXES
             and "__pycache__" not in p.parts and not any(
                 part.startswith(".") for part in p.relative_to(folder).parts)}
    up = folder
    while up != entry.root and (up / "__init__.py").is_file():  # packages above the recipe
        found.add(up / "__init__.py")
        up = up.parent
    return sorted((p.relative_to(entry.root).as_posix(), p) for p in found)


def import_recipe(recipe: dict[str, Any], code_sha256: str | None, read_blob) -> ModuleType:
    """The recipe module a version was registered with (see the module docstring)."""
    module_name = recipe.get("module")
    if module_name:
        installed = _installed(module_name, recipe.get("source_sha256"))
        if installed is not None:
            return installed
    if code_sha256 is None:
        raise InvalidInputError(f"the recipe {recipe.get('entry')!r} is not importable here "
                                "and the version holds no code snapshot")
    with _lock:
        cached = _loaded.get(code_sha256)
        if cached is not None:
            return cached
        root = _extract(code_sha256, read_blob)
        path = root / recipe["file"]
        name = f"_tympan_model_code_{code_sha256[:16]}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise InvalidInputError(f"cannot import the snapshot of {recipe.get('entry')}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(root))  # the recipe's own absolute imports of its package
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        finally:
            sys.path.remove(str(root))
        _loaded[code_sha256] = module
        return module


def _installed(module_name: str, source_sha256: str | None) -> ModuleType | None:
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or spec.origin is None:
        return None
    if hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest() != source_sha256:
        return None  # changed since registration: the snapshot is what was registered
    return importlib.import_module(module_name)


def _extract(code_sha256: str, read_blob) -> Path:
    root = Path(tempfile.gettempdir()) / f"tympan-model-code-{os.getuid()}" / code_sha256
    if not (root / ".complete").is_file():
        with zipfile.ZipFile(io.BytesIO(read_blob(code_sha256))) as archive:
            for name in archive.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise InvalidInputError(f"code snapshot {code_sha256[:12]} holds an unsafe "
                                            f"path {name!r}")
            archive.extractall(root)
        (root / ".complete").touch()
    return root
