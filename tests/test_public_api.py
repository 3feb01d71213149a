"""The public surface is explicit, and importing tympan stays light and side-effect free."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import tympan

ROOT = Path(__file__).resolve().parents[1]


def test_exported_names() -> None:
    assert sorted(tympan.__all__) == sorted([
        "Run", "RunRecord", "TympanError", "__version__", "active_run", "find_runs", "finish",
        "init", "load_run", "log", "log_artifact", "log_audio", "log_image", "log_table",
        "models", "probe", "seed_everything",
    ])
    for name in tympan.__all__:
        assert getattr(tympan, name) is not None


def test_import_is_light_and_has_no_side_effects(tmp_path) -> None:
    code = (
        "import os, sys, json; before = dict(os.environ); import tympan; "
        "print(json.dumps({'mods': sorted(sys.modules), 'env_same': dict(os.environ) == before,"
        " 'threads': __import__('threading').active_count()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    result = json.loads(out.stdout)
    heavy = {"torch", "numpy", "sqlalchemy", "fastapi", "ray", "alembic", "soundfile"}
    assert heavy.isdisjoint(m.split(".")[0] for m in result["mods"])
    assert result["env_same"] and result["threads"] == 1
    assert not (tmp_path / ".tympan").exists()


def test_every_setting_is_documented() -> None:
    from tympan.settings import SETTINGS

    doc = (ROOT / "docs" / "settings.md").read_text()
    missing = [name for name in SETTINGS if f"`{name}`" not in doc]
    assert not missing, f"document these settings in docs/settings.md: {missing}"
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "tympan").rglob("*.py"))
    used = set(re.findall(r"\"(TYMPAN_[A-Z_]+)\"", source))
    assert used <= set(SETTINGS), f"settings used but not declared: {used - set(SETTINGS)}"


def test_error_tree_is_rooted_at_tympan_error() -> None:
    from tympan import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type)
               and issubclass(c, Exception)]
    assert all(issubclass(c, errors.TympanError) for c in classes)
    for cls in classes:
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the drawn tree"
