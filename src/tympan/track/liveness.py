"""Is a 'running' run's process still there? If not, the run is shown (and stored) as crashed.

Same host: the pid is checked directly, so a SIGKILLed run is seen at once. Other hosts:
the run is presumed crashed after TYMPAN_CRASH_AFTER seconds without a heartbeat. A wrongly
presumed crash heals itself: the next heartbeat sets the run back to running.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from typing import Any

from tympan import settings
from tympan.store import Store, runs


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def is_gone(row: Any, now: float, crash_after: float, host: str) -> bool:
    if row.status != "running":
        return False
    if row.host == host and row.pid is not None:
        if row.pid == os.getpid():
            return False  # this very process
        if not pid_alive(row.pid):
            return True
    heartbeat = row.heartbeat_at or row.started_at
    return now - heartbeat > crash_after


def reconcile(store: Store, rows: Iterable[Any]) -> set[str]:
    """Mark the runs among ``rows`` whose process is gone as crashed; returns their ids."""
    now = time.time()
    crash_after = settings.get("TYMPAN_CRASH_AFTER")
    host = socket.gethostname()
    gone = [r for r in rows if is_gone(r, now, crash_after, host)]
    crashed: set[str] = set()
    if gone:
        with store.write() as conn:
            for row in gone:
                if runs.mark_crashed(conn, row.id, row.heartbeat_at):
                    crashed.add(row.id)
    return crashed
