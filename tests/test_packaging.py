"""Packaging and first contact (issue 16, item 5): ``python -m tympan``, what the wheel and
sdist ship, the build requirement, and a missing optional extra named in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import tympan

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI as in an environment where the given top-level modules are not installed:
# importing one of them raises ModuleNotFoundError exactly as a missing package does.
WITHOUT = textwrap.dedent("""
    import importlib.abc, sys
    hidden = set(sys.argv[1].split(","))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in hidden:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from tympan.cli.app import main
    sys.exit(main(sys.argv[2:]))
""")


def cli_without(modules: str, *args: str, cwd: Path | None = None
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT, modules, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def source_tree(tree: Path) -> Path:
    """What a source distribution holds (metadata, src/, recipes/), copied to ``tree``."""
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    for folder in ("src", "recipes"):
        shutil.copytree(ROOT / folder, tree / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return tree


def test_python_dash_m_tympan_is_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "tympan", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"tympan {tympan.__version__}"
    done = subprocess.run([sys.executable, "-m", "tympan", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Usage: tympan ")


@pytest.mark.parametrize(("hidden", "args", "extra"), [
    ("fastapi,uvicorn,starlette", ("ui", "--no-open", "--port", "0"), "ui"),
    ("psycopg", ("--store", "postgresql+psycopg://nobody@127.0.0.1:9/none", "runs"),
     "postgres"),
    ("tensorboard", ("import", "tensorboard", "{tmp}"), "tensorboard"),
    ("torch", ("run", str(ROOT / "recipes" / "asr_ctc")), "torch"),
])
def test_a_missing_extra_is_named_in_one_line(hidden: str, args: tuple[str, ...], extra: str,
                                              tmp_path: Path) -> None:
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    done = cli_without(hidden, "--store", str(tmp_path / "store"), *args) \
        if args[0] != "--store" else cli_without(hidden, *args)
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert f"pip install 'tympan[{extra}]'" in lines[0]


def test_a_module_no_extra_provides_stays_a_traceback() -> None:
    from tympan.extras import extra_providing

    assert extra_providing("fastapi") == "ui" and extra_providing("torch") == "torch"
    assert extra_providing("numpy") is None  # a core dependency: missing means a broken install
    assert extra_providing("no_such_module") is None


def test_probe_is_reachable_after_import_tympan_without_loading_torch() -> None:
    code = ("import sys, tympan; probe = tympan.probe; print('torch' in sys.modules); "
            "print('attach' in probe.__all__, probe.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["False", "True", "tympan.probe"]


def test_the_build_requirement_supports_the_license_metadata() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # An SPDX string in project.license and license-files need setuptools >= 77 (PEP 639).
    assert isinstance(project["project"]["license"], str)
    assert "LICENSE" in project["project"]["license-files"]
    assert any(req.replace(" ", "").startswith("setuptools>=7") and
               int(req.replace(" ", "").split(">=")[1].split(".")[0]) >= 77
               for req in project["build-system"]["requires"])
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").lstrip().startswith(
        "Apache License")


def test_wheel_and_sdist_ship_the_license_and_the_recipes(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", minversion="77")
    tree, dist = source_tree(tmp_path / "tree"), tmp_path / "dist"
    for hook in ("build_wheel", "build_sdist"):  # as pip and `python -m build` call them
        done = subprocess.run(
            [sys.executable, "-c", f"import sys; from setuptools import build_meta as b; "
             f"b.{hook}(sys.argv[1])", str(dist)],
            cwd=tree, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(dist.iterdir())
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names[-10:]
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: Apache-2.0" in wheel.read(metadata).decode()
        assert "tympan/__main__.py" in names
        for recipe in ("asr_ctc", "speaker_id", "tts"):
            assert f"recipes/{recipe}/train.py" in names
            assert f"recipes/{recipe}/configs/base.yaml" in names
    with tarfile.open(sdists[0]) as sdist:
        assert any(n.endswith("/LICENSE") for n in sdist.getnames())


def test_a_recipe_runs_by_name_from_the_installed_wheel(tmp_path: Path) -> None:
    # Installed from a wheel, with no checkout in sight: `tympan run asr_ctc` finds the
    # recipe that ships with tympan and trains it.
    pytest.importorskip("setuptools", minversion="77")
    tree, site, work = source_tree(tmp_path / "tree"), tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(tree)],
                   check=True, capture_output=True, timeout=300)
    # The wheel's copy first on the path (ahead of this checkout's editable install).
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import recipes, tympan; "
            "assert recipes.__file__.startswith(sys.argv[1]), recipes.__file__; "
            "assert tympan.__file__.startswith(sys.argv[1]), tympan.__file__; "
            "from tympan.cli.app import main; sys.exit(main(sys.argv[2:]))")
    store = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-c", code, str(site), "--store", str(store), "run", "asr_ctc",
         f"corpus_dir={tmp_path / 'corpus'}", "voices=3", "per_speaker=3", "epochs=1",
         "hidden=32", "layers=1", "batch_size=4", "warmup_steps=1", "n_boot=50"],
        cwd=work, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = tympan.find_runs(store=str(store), project="asr-ctc")
    assert record.status == "finished" and "test/wer" in record.summary
    unknown = subprocess.run([sys.executable, "-c", code, str(site), "run", "asr_ct"],
                             cwd=work, capture_output=True, text=True, timeout=120)
    assert unknown.returncode != 0
    assert "asr_ctc, speaker_id, tts" in unknown.stderr, unknown.stderr


# .venv-mlflow (`make mlflow-venv`) is a real install of tympan's core with none of the
# extras below: each command run there must name its extra in one line, as a user sees it.
CORE_VENV = ROOT / ".venv-mlflow" / "bin"


@pytest.mark.parametrize(("args", "extra"), [
    (("run", str(ROOT / "recipes" / "asr_ctc")), "torch"),
    (("--store", "postgresql+psycopg://nobody@127.0.0.1:9/none", "runs"), "postgres"),
    (("ablate", str(ROOT / "studies" / "asr_components_quick.yaml"), "--executor", "ray"),
     "ray"),
    (("server", "--artifacts", "s3://bucket/tympan", "--port", "0"), "s3"),
    (("serve", "models:/asr-digits@champion", "--port", "0"), "serve"),
    (("import", "tensorboard", "{tmp}"), "tensorboard"),
    (("-c", "from tympan.integrations.lightning import TympanLogger"), "lightning"),
    (("-c", "from tympan.integrations.transformers import TympanCallback"), "transformers"),
])
def test_a_missing_extra_is_named_in_one_line_in_a_real_install(
    args: tuple[str, ...], extra: str, tmp_path: Path,
) -> None:
    if not (CORE_VENV / "python").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CORE_VENV} is missing: `make mlflow-venv` makes it")
        pytest.skip(f"{CORE_VENV} is missing: run `make mlflow-venv`")
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    if args[0] == "-c":  # an import in the user's own script
        command = [str(CORE_VENV / "python"), *args]
    elif args[0] == "--store":
        command = [str(CORE_VENV / "tympan"), *args]
    else:
        command = [str(CORE_VENV / "tympan"), "--store", str(tmp_path / "store"), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TYMPAN_")}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 1, done
    hint = f"pip install 'tympan[{extra}]'"
    if args[0] == "-c":  # Python's own report of the error: its last line names the extra
        assert done.stderr.strip().splitlines()[-1].endswith(hint), done.stderr
        return
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].lower().startswith("error: "), done.stderr
    assert hint in lines[0]
