"""Settings, read from ``TYMPAN_*`` environment variables when a feature asks for them.

Nothing is read at import time. Every setting is listed in ``SETTINGS`` and documented in
``docs/settings.md`` (a test keeps the two in step).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tympan.errors import SettingsError


@dataclass(frozen=True)
class Setting:
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _run_id(text: str) -> str:
    from tympan.ids import ID_ALPHABET, ID_LENGTH

    if len(text) != ID_LENGTH or any(c not in ID_ALPHABET for c in text):
        raise ValueError(f"a run id is {ID_LENGTH} characters of [0-9a-z]")
    return text


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be one of 1/0, true/false, yes/no, on/off")


SETTINGS: dict[str, Setting] = {
    s.env: s
    for s in [
        Setting("TYMPAN_STORE", ".tympan", str,
                "Where runs are stored: a directory, sqlite:///FILE, postgresql+psycopg://... "
                "or a tympan server at http(s)://HOST:PORT."),
        Setting("TYMPAN_TOKEN", None, str,
                "API token sent to a tympan server when TYMPAN_STORE is http(s)://HOST:PORT "
                "(`tympan token create --scope write`)."),
        Setting("TYMPAN_ARTIFACTS", None, str,
                "Artifact (blob) root recorded when a new store is created; "
                "defaults to blobs/ inside a directory store."),
        Setting("TYMPAN_PROJECT", "default", str, "Project used when init() names none."),
        Setting("TYMPAN_FLUSH_INTERVAL", 0.5, _positive_float,
                "Seconds between background flushes; a SIGKILL loses about this much plus "
                "the time a flush takes."),
        Setting("TYMPAN_HEARTBEAT_INTERVAL", 5.0, _positive_float,
                "Seconds between heartbeats of a running run."),
        Setting("TYMPAN_CRASH_AFTER", 60.0, _positive_float,
                "Seconds without a heartbeat after which a running run is shown as crashed."),
        Setting("TYMPAN_SPOOL_POINTS", 5_000_000, _positive_int,
                "Most metric points kept in memory while the store is unwritable."),
        Setting("TYMPAN_SPOOL_MB", 1024, _positive_int,
                "Most MiB of files (artifact copies, audio, images) kept in memory while the "
                "store cannot take them."),
        Setting("TYMPAN_SPOOL_DIR", "~/.cache/tympan/spool", str,
                "Folder of the disk journals that keep what a process logs while its tympan "
                "server is down (sent later by the process, `tympan sync` or the next init)."),
        Setting("TYMPAN_SPOOL_DISK_MB", 4096, _positive_int,
                "Most MiB one process journals on disk while its tympan server is down; past "
                "it the journal keeps the oldest writes and newer ones wait in memory."),
        Setting("TYMPAN_SQL_CACHE", "~/.cache/tympan/sql", str,
                "Folder where the SQL of store reads is kept once compiled, so that reading a "
                "SQLite store needs no SQLAlchemy import."),
        Setting("TYMPAN_BUSY_TIMEOUT", 30.0, _positive_float,
                "Seconds a SQLite write waits for another process's lock before it is retried."),
        Setting("TYMPAN_EXIT_TIMEOUT", 30.0, _positive_float,
                "Seconds interpreter exit waits for an unwritable store before giving up."),
        Setting("TYMPAN_CHECK_STORE", True, _flag,
                "Run SQLite's quick_check on a store before a process first writes to it, "
                "refusing a damaged file (reads the whole file once)."),
        Setting("TYMPAN_CAPTURE_ENV", True, _flag,
                "Record git state, packages and hardware with every new run."),
        Setting("TYMPAN_SYSTEM_METRICS", True, _flag,
                "Sample CPU, memory, disk and network I/O and GPUs into every run's system/ "
                "metrics (tympan.init(system_metrics=...) decides per run)."),
        Setting("TYMPAN_SYSTEM_INTERVAL", 10.0, _positive_float,
                "Seconds between two samples of system metrics."),
        Setting("TYMPAN_CONSOLE", True, _flag,
                "Keep what a run's script prints (stdout, stderr) as its console.log artifact "
                "(tympan.init(console=...) decides per run)."),
        Setting("TYMPAN_CONSOLE_LIMIT", 4_000_000, _positive_int,
                "Characters of console output kept per run: the first and the last half."),
        Setting("TYMPAN_STUDY", None, str,
                "Study id that new runs are linked to when init() names none "
                "(set by `tympan ablate` for its trials)."),
        Setting("TYMPAN_PROTECTED_ALIASES", "champion", str,
                "Comma-separated aliases protected in every newly registered model: only an "
                "admin or a gate that passed moves them (`tympan model protect` changes a "
                "model's own list)."),
        Setting("TYMPAN_RUN_ID", None, _run_id,
                "Id for the first run a process starts (set by `tympan ablate`, so it knows "
                "which run a trial made); taken once, then removed from the environment."),
    ]
}


def get(env: str, environ: Mapping[str, str] | None = None) -> Any:
    """The value of one setting, parsed; a bad value raises SettingsError naming it."""
    setting = SETTINGS[env]
    source = os.environ if environ is None else environ
    raw = source.get(env)
    if raw is None or raw == "":
        return setting.default
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{env}={raw!r} is not valid: {exc}") from None
