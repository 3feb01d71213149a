"""capture_environment on a real git repository, a plain directory and this interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tympan.track import environment
from tympan.track.environment import capture_environment, environment_digest

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# A local identity and no signing, so commits work on a machine with no global git config.
_GIT_CONFIG = [
    "-c",
    "user.name=Tympan Test",
    "-c",
    "user.email=test@example.com",
    "-c",
    "commit.gpgsign=false",
]


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Keep git from finding a repo above tmp_path, or one named by the test runner's env.
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *_GIT_CONFIG, *args], cwd=repo, capture_output=True, check=True, timeout=30
    )
    return proc.stdout.decode().strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repo on branch 'trunk' with one commit, origin set with credentials in its URL."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "symbolic-ref", "HEAD", "refs/heads/trunk")  # any git version, any default
    (root / "train.py").write_text("lr = 0.1\n")
    (root / "config.yaml").write_text("epochs: 10\n")
    git(root, "add", "train.py", "config.yaml")
    git(root, "commit", "-q", "-m", "first")
    git(root, "remote", "add", "origin", "https://user:pw@example.com/x.git")
    return root


@needs_git
def test_git_clean_repo(repo: Path) -> None:
    info = capture_environment(repo)["git"]
    assert info["commit"] == git(repo, "rev-parse", "HEAD")
    assert len(info["commit"]) == 40
    assert info["branch"] == "trunk"
    assert info["dirty"] is False
    assert info["diff"] == ""
    assert info["untracked"] == []
    assert Path(info["root"]).resolve() == repo.resolve()


@needs_git
def test_git_dirty_repo_records_diff_staged_changes_and_untracked(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.01\n")  # unstaged
    (repo / "config.yaml").write_text("epochs: 20\n")
    git(repo, "add", "config.yaml")  # staged
    (repo / "notes.txt").write_text("try a smaller lr\n")  # untracked
    (repo / "sub").mkdir()
    (repo / "sub" / "extra.py").write_text("x = 1\n")

    info = capture_environment(repo / "sub")["git"]  # found from a subdirectory, too

    assert info["dirty"] is True
    assert "-lr = 0.1\n+lr = 0.01\n" in info["diff"]
    assert "-epochs: 10\n+epochs: 20\n" in info["diff"]
    assert sorted(info["untracked"]) == ["notes.txt", "sub/extra.py"]
    assert Path(info["root"]).resolve() == repo.resolve()
    # The recorded diff is a real patch: it re-creates the working tree from the commit.
    clone = repo.parent / "clone"
    git(repo.parent, "clone", "-q", str(repo), str(clone))
    (clone / "change.patch").write_text(info["diff"])
    git(clone, "apply", "change.patch")
    assert (clone / "train.py").read_text() == "lr = 0.01\n"
    assert (clone / "config.yaml").read_text() == "epochs: 20\n"


@needs_git
def test_git_only_untracked_files_is_not_dirty(repo: Path) -> None:
    (repo / "scratch.txt").write_text("x\n")
    info = capture_environment(repo)["git"]
    assert info["dirty"] is False
    assert info["untracked"] == ["scratch.txt"]


@needs_git
def test_git_remote_credentials_are_stripped(repo: Path) -> None:
    info = capture_environment(repo)["git"]
    assert info["remote"] == "https://***@example.com/x.git"
    assert "pw" not in json.dumps(info)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@example.com/x.git", "https://***@example.com/x.git"),
        ("https://ghp_token@github.com/a/b.git", "https://***@github.com/a/b.git"),
        ("ssh://git@github.com/a/b.git", "ssh://git@github.com/a/b.git"),
        ("ssh://git:pw@github.com:2222/a/b.git", "ssh://git:***@github.com:2222/a/b.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
        ("/srv/git/b.git", "/srv/git/b.git"),
        ("postgresql+psycopg://u:p@db:5432/tympan", "postgresql+psycopg://u:***@db:5432/tympan"),
    ],
)
def test_git_remote_credentials_are_masked(url: str, expected: str) -> None:
    assert environment.redact(url) == expected


@needs_git
def test_git_without_remote_or_commit(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "symbolic-ref", "HEAD", "refs/heads/trunk")
    (root / "a.py").write_text("a = 1\n")
    info = capture_environment(root)["git"]
    assert info["commit"] is None
    assert info["diff"] is None
    assert info["branch"] == "trunk"
    assert info["remote"] is None
    assert info["untracked"] == ["a.py"]


@needs_git
def test_git_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    info = capture_environment(repo)["git"]
    assert info["branch"] is None
    assert info["commit"] == git(repo, "rev-parse", "HEAD")


@needs_git
def test_git_large_diff_is_truncated_with_marker(repo: Path) -> None:
    line = "x" * 99 + "\n"
    (repo / "train.py").write_text(line * 12_000)  # about 1.2 MB of diff
    diff = capture_environment(repo)["git"]["diff"]
    body, marker = diff.rstrip("\n").rsplit("\n", 1)
    assert marker.startswith("[tympan: diff truncated:")
    assert len(body.encode()) <= environment.DIFF_LIMIT_BYTES
    assert body.startswith("diff --git a/train.py b/train.py")


@needs_git
def test_git_untracked_list_is_capped(repo: Path) -> None:
    data = repo / "data"
    data.mkdir()
    for i in range(environment.UNTRACKED_LIMIT + 50):
        (data / f"{i:04d}.wav").write_bytes(b"")
    assert len(capture_environment(repo)["git"]["untracked"]) == environment.UNTRACKED_LIMIT


def test_not_a_git_repo_gives_none(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert capture_environment(plain)["git"] is None


def test_missing_directory_gives_none(tmp_path: Path) -> None:
    assert capture_environment(tmp_path / "nowhere")["git"] is None


def test_all_sections_present_and_json_round_trip(tmp_path: Path) -> None:
    env = capture_environment(tmp_path)
    assert set(env) == {"git", "python", "packages", "os", "cpu", "gpu", "command", "env_vars"}
    assert json.loads(json.dumps(env)) == env

    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["python"]["executable"] == sys.executable
    assert env["python"]["implementation"]

    import numpy

    assert env["packages"]["numpy"] == numpy.__version__
    assert list(env["packages"]) == sorted(env["packages"])
    assert all(name == name.lower() and "_" not in name for name in env["packages"])

    assert set(env["os"]) == {"system", "release", "version", "machine", "hostname"}
    assert env["cpu"]["count"] == os.cpu_count()
    assert env["cpu"]["memory_bytes"] is None or env["cpu"]["memory_bytes"] > 2**20
    assert isinstance(env["gpu"], list)
    for gpu in env["gpu"]:
        assert set(gpu) == {"name", "memory_bytes", "driver"}

    assert env["command"] == {"argv": sys.argv, "cwd": os.getcwd(), "executable": sys.executable}


def test_env_vars_recorded_selectively_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TYMPAN_PROJECT", "asr")
    monkeypatch.setenv("TYMPAN_API_TOKEN", "tok-123")
    monkeypatch.setenv("TYMPAN_S3_SECRET_KEY", "s3-456")
    monkeypatch.setenv("TYMPAN_STORE", "postgresql+psycopg://me:hunter2@db/tympan")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-789")
    monkeypatch.setenv("NOT_TYMPAN_X", "1")

    recorded = capture_environment()["env_vars"]

    assert recorded["TYMPAN_PROJECT"] == "asr"
    assert recorded["TYMPAN_API_TOKEN"] == "***"
    assert recorded["TYMPAN_S3_SECRET_KEY"] == "***"
    assert recorded["TYMPAN_STORE"] == "postgresql+psycopg://me:***@db/tympan"
    assert recorded["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert recorded["OMP_NUM_THREADS"] == "4"
    assert recorded["PYTHONHASHSEED"] == "0"
    assert "AWS_SECRET_ACCESS_KEY" not in recorded
    assert "NOT_TYMPAN_X" not in recorded
    for secret in ("tok-123", "s3-456", "hunter2", "aws-789"):
        assert secret not in json.dumps(recorded)


def test_capture_does_not_change_os_environ(repo_or_tmp: Path) -> None:
    before = dict(os.environ)
    capture_environment(repo_or_tmp)
    assert dict(os.environ) == before


@pytest.fixture
def repo_or_tmp(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    if shutil.which("git") is None:
        return tmp_path
    return request.getfixturevalue("repo")


def test_capture_prints_nothing(repo_or_tmp: Path, capfd: pytest.CaptureFixture[str]) -> None:
    capture_environment(repo_or_tmp)
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_capture_does_not_import_torch(tmp_path: Path) -> None:
    # A fresh interpreter: this test process may already have imported torch elsewhere.
    src = Path(environment.__file__).resolve().parents[2]
    code = (
        "import sys\n"
        "from tympan.track.environment import capture_environment\n"
        "env = capture_environment()\n"
        "assert isinstance(env['gpu'], list), env['gpu']\n"
        "assert 'torch' not in sys.modules\n"
    )
    pythonpath = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)
    child_env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == ""


def test_digest_is_stable_and_tracks_changes(tmp_path: Path) -> None:
    env = capture_environment(tmp_path)
    digest = environment_digest(env)
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert environment_digest(capture_environment(tmp_path)) == digest
    # Key order does not matter: the digest is of canonical JSON.
    assert environment_digest(dict(reversed(list(env.items())))) == digest

    changed = json.loads(json.dumps(env))
    changed["packages"]["numpy"] = "0.0.0"
    assert environment_digest(changed) != digest
    changed = json.loads(json.dumps(env))
    changed["env_vars"]["TYMPAN_EXTRA"] = "1"
    assert environment_digest(changed) != digest


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in nvidia-smi is a sh script")
def test_gpus_from_nvidia_smi_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU needed: a stand-in nvidia-smi on PATH prints what the real one prints.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'test "$1" = "--query-gpu=name,memory.total,driver_version" || exit 9\n'
        "printf 'NVIDIA H100 80GB HBM3, 81559, 550.54.15\\n'\n"
        "printf 'Tesla T4, [N/A], [N/A]\\n'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert environment._gpus_from_nvidia_smi() == [
        {"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 81559 * 2**20, "driver": "550.54.15"},
        {"name": "Tesla T4", "memory_bytes": None, "driver": None},
    ]


def test_no_nvidia_smi_gives_empty_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert environment._gpus_from_nvidia_smi() == []
