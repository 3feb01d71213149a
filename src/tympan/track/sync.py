"""Sending disk journals (``journal.py``) to their tympan server: a live process's own once
the server is back, those that ended processes left (at the next ``tympan.init`` against the
server, in the background), and ``tympan sync``.

A journal is sent under its lock, record by record in order, and the ``sent`` offset moves past
each record the server acknowledged, so a sync cut short resumes where it stopped. A record sent
again (its answer was lost, a sync was killed after sending it) is stored once, because every
record carries the key that makes its write idempotent; and the lock keeps two syncs, or a sync
and the live process that owns the journal, from sending the same journal at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tympan.errors import NotFoundError, StoreError, StoreUnavailableError, TympanError
from tympan.track.journal import Journal, Reading, journals, server_folder

if TYPE_CHECKING:
    from tympan.track.remote import HttpTransport

log = logging.getLogger("tympan")


@dataclass
class Sent:
    """What sending one journal did."""

    name: str
    records: int = 0
    points: int = 0
    files: int = 0
    refused: list[str] = field(default_factory=list)  # records the server refused for good
    problem: str | None = None  # why the journal is kept (a damaged record, a refusal)
    note: str | None = None  # a last record cut short when its process died: dropped

    @property
    def done(self) -> bool:
        return self.problem is None


def send_journal(transport: HttpTransport, journal: Journal, *, stop_at_refusal: bool,
                 progress: Callable[[int], None] | None = None) -> Sent:
    """Send ``journal``'s records from its ``sent`` offset, then remove it (or, when a record
    is damaged, set it aside). A record the server refuses for good is named and skipped, or,
    with ``stop_at_refusal``, stops the sending when the refusal is about the token (another
    token may be allowed): the journal is kept from that record on. StoreUnavailableError
    (the server is down again) leaves the journal as it is, resumable."""
    reading = Reading()
    sent = Sent(journal.name)
    for record in journal.records(reading):
        data = record.data
        source = str(journal.blob_path(data["sha256"])) if data["op"] == "blob" else None
        try:
            transport.send_record(data, source)
        except StoreUnavailableError:
            raise
        except FileNotFoundError:
            sent.refused.append(f"{_label(data)}: its file is missing from {journal.folder}")
        except TympanError as exc:
            if stop_at_refusal and isinstance(exc, StoreError | NotFoundError):
                sent.problem = (f"journal {journal.folder}: the server refused "
                                f"{_label(data)}: {exc}; the journal is kept from there")
                journal.release()
                return sent
            sent.refused.append(f"{_label(data)}: {exc}")
        else:
            sent.records += 1
            sent.points += int(data.get("points", 0))
            sent.files += data["op"] == "blob"
        journal.mark_sent(record.end)
        if progress is not None:
            progress(record.end)
    for refusal in sent.refused:
        log.error("tympan: journal %s: the server refused %s", journal.name, refusal)
    if reading.problem is not None and not reading.cut_short:
        sent.problem = (f"{reading.problem}; the {reading.records} records before it were "
                        f"sent; the journal is kept at {journal.set_aside()}")
        return sent
    sent.note = reading.problem
    journal.remove()
    return sent


@dataclass
class Waiting:
    """What one journal holds that the server has not acknowledged."""

    folder: Path
    about: dict[str, Any]
    records: int = 0
    points: int = 0
    files: int = 0
    bytes: int = 0  # of the journal file still to send, and of its files
    runs: set[str] = field(default_factory=set)
    problem: str | None = None
    in_use: bool = False  # locked by a live process or another sync: not read


def waiting(url: str) -> list[Waiting]:
    """Every journal waiting for the server at ``url``, oldest first; one being written or
    sent by another process is listed as in use."""
    found = []
    for folder in journals(server_folder(url)):
        journal = Journal.claim(folder)
        if journal is None:
            if (folder / "journal").exists():
                found.append(Waiting(folder, {}, in_use=True))
            continue
        try:
            found.append(_contents(journal))
        finally:
            journal.release()
    return found


def _contents(journal: Journal) -> Waiting:
    reading = Reading()
    item = Waiting(journal.folder, journal.about)
    start = journal.sent()
    end = start
    for record in journal.records(reading):
        data = record.data
        item.records += 1
        item.points += int(data.get("points", 0))
        item.runs.update(data.get("runs", []))
        if data["op"] == "blob":
            item.files += 1
            item.bytes += int(data["size"])
        end = record.end
    item.bytes += end - start
    item.problem = reading.problem
    return item


def send_waiting(transport: HttpTransport, on_record: Callable[[int], None] | None = None,
                 skip: Path | None = None) -> tuple[list[Sent], list[Path]]:
    """Send every journal waiting for ``transport``'s server, oldest first: (what sending
    each did, the journals skipped because another process holds them)."""
    results, in_use = [], []
    for folder in journals(server_folder(transport.where)):
        if folder == skip:
            continue
        journal = Journal.claim(folder)
        if journal is None:
            if (folder / "journal").exists():
                in_use.append(folder)
            continue
        try:
            results.append(send_journal(transport, journal, stop_at_refusal=True,
                                        progress=on_record))
        except BaseException:
            journal.release()
            raise
    return results, in_use


def send_leftovers(transport: HttpTransport, own: Path | None, wait: bool) -> None:
    """What ``tympan.init`` does: send the journals ended processes left for this server, in
    the background (or, ``wait``, before returning), saying so once. Even listing them reads
    them, so in the background that happens on the background thread too."""

    def send() -> None:
        left = [w for w in waiting(transport.where) if not w.in_use and w.folder != own]
        if not left:
            return
        log.warning("tympan: sending %d journal(s) that earlier processes left on disk for %s "
                    "(%d points, %d files) %s; `tympan sync` does the same", len(left),
                    transport.where, sum(w.points for w in left), sum(w.files for w in left),
                    "first" if wait else "in the background")
        try:
            results, _ = send_waiting(transport, skip=own)
        except StoreUnavailableError as exc:
            log.warning("tympan: the journals left on disk wait for `tympan sync`: %s", exc)
            return
        for result in results:
            if result.problem is not None:
                log.error("tympan: %s", result.problem)

    if wait:
        send()
    else:
        threading.Thread(target=send, name="tympan-leftovers", daemon=True).start()


def _label(record: dict[str, Any]) -> str:
    if record["op"] == "blob":
        return f"the upload of file {record['sha256'][:12]} ({record['size']} bytes)"
    runs = ", ".join(record.get("runs", []))
    return f"{record.get('what', record['path'])} of run {runs}"
