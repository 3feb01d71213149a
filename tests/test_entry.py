"""`tympan run` and the entry points it resolves: recipe directories, files, modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tympan
from tympan.entry import resolve_entry
from tympan.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """\
import sys
import tympan
from {helper} import greeting

args = dict(a.split("=", 1) for a in sys.argv[1:])
with tympan.init(project="entry", config=args) as run:
    run.log({{"score": float(args.get("score", 1))}})
print(greeting(), run.id)
if args.get("fail"):
    sys.exit(3)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: a recipe package with a helper module it imports absolutely."""
    pkg = tmp_path / "lab" / "recipes" / "toy"
    pkg.mkdir(parents=True)
    (tmp_path / "lab" / "recipes" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "common.py").write_text("def greeting():\n    return 'hello from toy'\n")
    (pkg / "train.py").write_text(SCRIPT.format(helper="recipes.toy.common"))
    (tmp_path / "lab" / "loose.py").write_text(SCRIPT.format(helper="helper"))
    (tmp_path / "lab" / "helper.py").write_text("def greeting():\n    return 'loose'\n")
    (tmp_path / "lab" / "empty").mkdir()
    (tmp_path / "lab" / "notes.txt").write_text("")
    return tmp_path / "lab"


def test_targets_resolve_to_modules_or_scripts(project: Path) -> None:
    for target in ("recipes/toy", "recipes/toy/train.py", "recipes.toy", "recipes.toy.train"):
        entry = resolve_entry(target, cwd=project)
        assert (entry.module, entry.root) == ("recipes.toy.train", project), target
    loose = resolve_entry("loose.py", cwd=project)
    assert loose.module is None and loose.script == project / "loose.py"
    assert loose.command(["x=1"]) == [sys.executable, str(project / "loose.py"), "x=1"]


@pytest.mark.parametrize(("target", "message"), [
    ("empty", "recipe directory empty has no train.py or __main__.py"),
    ("notes.txt", "not a Python file"),
    ("recipes/missing", "does not exist"),
    ("no_such_module", "no recipe 'no_such_module'"),
    ("recipes.toy.sub", "package recipes.toy.sub has no train or __main__ module"),
])
def test_bad_targets_say_what_is_wrong(project: Path, target: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        resolve_entry(target, cwd=project)


def _tympan(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "tympan"), *args], cwd=project,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("target", ["recipes/toy", "recipes.toy", "loose.py"])
def test_tympan_run_passes_overrides_and_store(project: Path, tmp_path: Path,
                                               target: str) -> None:
    store = tmp_path / "store"
    done = _tympan(project, "--store", str(store), "run", target, "lr=0.1", "score=0.25")
    assert done.returncode == 0, done.stderr
    (record,) = tympan.find_runs(store=str(store), project="entry")
    assert record.config == {"lr": "0.1", "score": "0.25"}
    assert record.summary["score"].last == 0.25
    assert record.id in done.stdout


def test_tympan_run_keeps_the_recipes_exit_status_and_help(project: Path,
                                                           tmp_path: Path) -> None:
    failed = _tympan(project, "--store", str(tmp_path / "s"), "run", "recipes/toy", "fail=1")
    assert failed.returncode == 3 and "hello from toy" in failed.stdout
    missing = _tympan(project, "run", "nowhere/train.py")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: nowhere/train.py does not exist")
    helped = _tympan(project, "run", "--help")
    assert helped.returncode == 0 and "RECIPE" in helped.stdout


def test_the_asr_recipe_runs_through_tympan_run_and_rejects_bad_overrides() -> None:
    done = _tympan(ROOT, "run", "recipes/asr_ctc", "--help")
    assert done.returncode == 0 and "--config" in done.stdout
    bad = _tympan(ROOT, "run", "recipes/asr_ctc", "encoder=lstm")
    assert bad.returncode == 2 and "encoder" in bad.stderr and "lstm" in bad.stderr
