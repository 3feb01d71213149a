"""Trials whose run went to the disk spool. A trial that logs to a tympan server which is down
when it starts its run, or ends it, leaves that run in a journal on disk (``track/journal.py``)
when it exits before the server is back. The server then knows no such run, or not its end;
the runner must not judge that "exited without a run": the trial's process is gone, so its
journal is free, and the runner sends it (as ``tympan sync`` would) before judging. A journal
it cannot send yet keeps the trial spooled, pending sync: the next ``tympan ablate`` sends it
again and counts the trial once its run is on the server."""

from __future__ import annotations

from pathlib import Path

from tympan import settings
from tympan.errors import StoreUnavailableError
from tympan.store.location import is_remote


def send_spooled(where: str, run_id: str) -> list[Path]:
    """Send the journals waiting on this machine for the server at ``where`` if one holds run
    ``run_id``; the journal folders that still hold it afterwards (none: it is on the server,
    or was never spooled)."""
    from tympan.track.remote import HttpTransport
    from tympan.track.sync import send_waiting, waiting

    if not is_remote(where) or not any(run_id in w.runs for w in waiting(where)):
        return []
    transport = HttpTransport(where, settings.get("TYMPAN_TOKEN"))
    try:
        send_waiting(transport)
    except StoreUnavailableError:
        pass  # still down: the journal stays, resumable
    finally:
        transport.close()
    return [w.folder for w in waiting(where) if run_id in w.runs]


SPOOLED = "spooled: "  # how a spooled trial's error begins (its status stays crashed)


def is_spooled(status: str, error: str | None) -> bool:
    """Whether a trial is spooled: its run waits on disk, pending sync."""
    return status == "crashed" and (error or "").startswith(SPOOLED)


def spooled_error(folders: list[Path]) -> str:
    return (f"{SPOOLED}its run waits in the disk spool {folders[0]} (pending sync): "
            "`tympan sync` sends it, and the next `tympan ablate` counts the trial")
