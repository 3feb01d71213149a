"""Capture where a run ran: code version, interpreter, packages, hardware, command.

``capture_environment()`` returns a plain JSON-serialisable dict. Every section is read by
its own small function; a section that fails comes back as ``None`` instead of raising,
because a missing piece of context must never stop a training run from starting.
Nothing here prints, imports torch, or touches ``os.environ``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tympan.store.location import redact

__all__ = ["capture_environment", "environment_digest"]

# A diff larger than this is cut: a run's record should stay small enough to load and show.
DIFF_LIMIT_BYTES = 1024 * 1024
UNTRACKED_LIMIT = 200
_GIT_TIMEOUT_S = 10.0
_NVIDIA_SMI_TIMEOUT_S = 5.0

_ENV_PREFIX = "TYMPAN_"
_ENV_NAMES = frozenset({"CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "PYTHONHASHSEED"})
_SECRET_MARKERS = ("TOKEN", "KEY", "SECRET", "PASSWORD")
_MASK = "***"


def capture_environment(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Describe where this process runs; ``cwd`` is the directory whose git repo is recorded.

    Keys: git, python, packages, os, cpu, gpu, command, env_vars. A value that cannot be
    determined is None; this function never raises because of the environment it inspects.
    """
    try:
        git_dir = Path(cwd) if cwd is not None else Path.cwd()
    except OSError:  # the process's cwd was deleted
        git_dir = None
    sections: dict[str, Callable[[], Any]] = {
        "git": lambda: _git_info(git_dir) if git_dir is not None else None,
        "python": _python_info,
        "packages": _packages,
        "os": _os_info,
        "cpu": _cpu_info,
        "gpu": _gpu_info,
        "command": _command_info,
        "env_vars": _env_vars,
    }
    env: dict[str, Any] = {}
    for name, read in sections.items():
        try:
            env[name] = read()
        except Exception:  # one broken section must not cost the others
            env[name] = None
    return env


def environment_digest(env: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``env``, so identical environments are stored once."""
    canonical = json.dumps(env, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- git ---------------------------------------------------------------------------------


def _git_info(cwd: Path) -> dict[str, Any] | None:
    if shutil.which("git") is None or not cwd.is_dir():
        return None
    root = _git_text(cwd, "rev-parse", "--show-toplevel")
    if root is None:
        return None  # not inside a work tree (or git refused, e.g. dubious ownership)
    top = Path(root)
    commit = _git_text(top, "rev-parse", "--verify", "-q", "HEAD")  # None before 1st commit
    # symbolic-ref works on an unborn branch and is empty (None) on a detached HEAD.
    branch = _git_text(top, "symbolic-ref", "--short", "-q", "HEAD")
    # Only tracked changes make a tree dirty; untracked files are listed on their own.
    status = _git_text(top, "status", "--porcelain", "--untracked-files=no", strip=False)
    diff = _git_diff(top) if commit is not None else None
    remote = _git_text(top, "remote", "get-url", "origin")
    return {
        "commit": commit,
        "branch": branch,
        "dirty": bool(status) if status is not None else None,
        "diff": diff,
        "untracked": _git_untracked(top),
        "remote": redact(remote) if remote else None,
        "root": root,
    }


def _git(cwd: Path, *args: str) -> bytes | None:
    """stdout of ``git args`` in ``cwd``, or None if git fails, hangs or is missing."""
    env = os.environ.copy()  # a copy: the user's process environment stays untouched
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a credential prompt
    env["GIT_OPTIONAL_LOCKS"] = "0"  # status must not take index.lock from the user's git
    try:
        proc = subprocess.run(
            ["git", "--no-pager", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _git_text(cwd: Path, *args: str, strip: bool = True) -> str | None:
    out = _git(cwd, *args)
    if out is None:
        return None
    text = out.decode("utf-8", errors="replace")
    if strip:
        text = text.strip()
        return text or None
    return text


def _git_diff(top: Path) -> str | None:
    # Against HEAD, so staged and unstaged changes both count; no external diff drivers,
    # no colour, so the text is a patch `git apply` can take back.
    out = _git(top, "diff", "--no-ext-diff", "--no-color", "--no-textconv", "HEAD")
    if out is None:
        return None
    if len(out) <= DIFF_LIMIT_BYTES:
        return out.decode("utf-8", errors="replace")
    head = out[:DIFF_LIMIT_BYTES].decode("utf-8", errors="ignore")  # drop a split character
    if not head.endswith("\n"):
        head += "\n"
    return head + (
        f"[tympan: diff truncated: {len(out)} bytes in all, first {DIFF_LIMIT_BYTES} kept]\n"
    )


def _git_untracked(top: Path) -> list[str] | None:
    # -z: raw paths, no C-style quoting of unusual names.
    out = _git(top, "ls-files", "--others", "--exclude-standard", "-z")
    if out is None:
        return None
    names = [p.decode("utf-8", errors="replace") for p in out.split(b"\0") if p]
    return names[:UNTRACKED_LIMIT]


# --- interpreter and packages ------------------------------------------------------------


def _python_info() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable or None,
    }


def _packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        if not name or not version:
            continue
        # First one on sys.path wins, as it does for import.
        found.setdefault(_normalise(name), version)
    return dict(sorted(found.items()))


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    # Scanning the header lines ourselves is ~10x faster than dist.metadata, which parses
    # the whole file (long description included) with the email parser.
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    name = version = None
    if text:
        for line in text.splitlines():
            if not line:
                break  # end of the headers
            if line.startswith("Name:"):
                name = line[5:].strip()
            elif line.startswith("Version:"):
                version = line[8:].strip()
            if name and version:
                return name, version
    return dist.metadata["Name"], dist.version


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


# --- machine -----------------------------------------------------------------------------


def _os_info() -> dict[str, Any]:
    return {
        "system": platform.system() or None,
        "release": platform.release() or None,
        "version": platform.version() or None,
        "machine": platform.machine() or None,
        "hostname": _quiet(socket.gethostname),
    }


def _cpu_info() -> dict[str, Any]:
    return {
        "model": _quiet(_cpu_model),
        "count": os.cpu_count(),
        "memory_bytes": _quiet(_memory_bytes),
    }


def _cpu_model() -> str | None:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    key, sep, value = line.partition(":")
                    if sep and key.strip() == "model name":
                        return value.strip() or None
        except OSError:
            pass
    # e.g. ARM Linux has no "model name" line; macOS and Windows have no /proc.
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024  # the file says kB, meaning KiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None  # e.g. Windows has no sysconf


def _gpu_info() -> list[dict[str, Any]]:
    # Use torch only if the user already imported it: importing it here would cost seconds.
    torch = sys.modules.get("torch")
    if torch is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "CUDA initialization" warnings: no output
            if torch.cuda.is_available():
                return _gpus_from_torch(torch)
    return _gpus_from_nvidia_smi()


def _gpus_from_torch(torch: Any) -> list[dict[str, Any]]:
    driver = _quiet(_nvidia_driver_version)
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append({"name": props.name, "memory_bytes": int(props.total_memory), "driver": driver})
    return gpus


def _nvidia_driver_version() -> str | None:
    # torch exposes the CUDA runtime version, not the driver's; the kernel module says it.
    with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
        match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", f.read())
    return match.group(1) if match else None


def _gpus_from_nvidia_smi() -> list[dict[str, Any]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    proc = subprocess.run(
        [
            exe,
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader,nounits",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=_NVIDIA_SMI_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        return []
    gpus = []
    for line in proc.stdout.decode("utf-8", errors="replace").splitlines():
        fields = [f.strip() for f in line.rsplit(",", 2)]  # from the right: names may hold ","
        if len(fields) != 3 or not fields[0]:
            continue
        name, memory_mib, driver = fields
        gpus.append(
            {
                "name": name,
                "memory_bytes": int(memory_mib) * 1024 * 1024 if memory_mib.isdigit() else None,
                "driver": driver if driver and not driver.startswith("[") else None,  # [N/A]
            }
        )
    return gpus


# --- command and environment variables ---------------------------------------------------


def _command_info() -> dict[str, Any]:
    return {
        "argv": [redact(arg) for arg in sys.argv],  # e.g. --store postgresql://me:pw@db/x
        "cwd": _quiet(os.getcwd),
        "executable": sys.executable or None,
    }


def _env_vars() -> dict[str, str]:
    recorded = {}
    for name, value in os.environ.items():
        if not (name.startswith(_ENV_PREFIX) or name in _ENV_NAMES):
            continue
        if any(marker in name.upper() for marker in _SECRET_MARKERS):
            recorded[name] = _MASK
        else:
            # e.g. TYMPAN_STORE=postgresql://user:pw@host/db must not store the password.
            recorded[name] = redact(value)
    return dict(sorted(recorded.items()))


def _quiet(read: Callable[[], Any]) -> Any:
    """``read()``, or None if it raises: one unknown field should not blank its section."""
    try:
        return read()
    except Exception:
        return None
