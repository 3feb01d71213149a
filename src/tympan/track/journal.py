"""The disk journal: the writes a process could not send to its tympan server, kept on disk.

While the server is down, :class:`~tympan.track.remote.HttpTransport` appends every write it
cannot send to its process's journal instead of holding it in memory, so the points and files
survive the process; the process itself, the next ``tympan.init`` against the same server or
``tympan sync`` sends them later (``sync.py``). Each record is one request exactly as it would
have been sent, with the keys that make it idempotent (a metric chunk's run, key and seq, an
artifact's path, a blob's SHA-256), so a record sent twice (a sync cut short, a server killed
mid-batch) is stored once. One folder per journal, ``SPOOL/<server>/<journal>/``:

    lock        held (flock) by whoever appends to or sends the journal: a live process or a
                sync; the kernel drops it when that process dies, so a journal is free exactly
                when nobody works on it
    about.json  the server, host, pid and start time, for listings
    journal     the records, one a line: the CRC-32 of the JSON in 8 hex digits, a space, the JSON
    sent        the byte offset up to which the server has acknowledged the records
    blobs/SHA   the files that records upload, named by their SHA-256

A record is appended and fsynced only once the files it names are in ``blobs/``, so a process
killed mid-write leaves at most a last line cut short: that write was never acknowledged to the
writer thread, which still held it in memory, and dropping it loses what the process's death
lost anyway. Any other damage stops reading at the damaged record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tympan import settings
from tympan.errors import StoreUnavailableError

DAMAGED = ".damaged"  # a journal set aside because a record in it is damaged


class JournalFullError(StoreUnavailableError):
    """The journal holds TYMPAN_SPOOL_DISK_MB already: what comes next waits in memory."""


def spool_root() -> Path:
    return Path(os.path.expanduser(settings.get("TYMPAN_SPOOL_DIR")))


def server_folder(url: str) -> Path:
    """Where the journals for the server at ``url`` (credentials masked) live: its host and
    port, readable, and a hash of the whole URL, so two servers never share a folder."""
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    return spool_root() / f"{_safe(host)}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class Record:
    """One record and where it lies in the journal file."""

    start: int
    end: int
    data: dict[str, Any]


@dataclass
class Reading:
    """What reading a journal found besides its records: a problem, and whether it is only a
    last record cut short (the normal trace of a process killed while appending)."""

    problem: str | None = None
    cut_short: bool = False
    records: int = 0


@dataclass
class Journal:
    folder: Path
    lock_fd: int
    size: int = 0  # bytes on disk: the journal file and its blobs
    full: bool = False  # once full, it takes nothing more: oldest on disk, newer in memory
    about: dict[str, Any] = field(default_factory=dict)

    # -- owning one ------------------------------------------------------------------------
    @classmethod
    def create(cls, server_dir: Path, server: str) -> Journal:
        """A new, locked journal of this process. It is made under a hidden name and renamed
        once locked, so a sync never finds it unlocked."""
        server_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{stamp}-{_safe(socket.gethostname())}-{os.getpid()}-{os.urandom(3).hex()}"
        hidden = server_dir / f".new-{name}"
        (hidden / "blobs").mkdir(parents=True)
        fd = _lock(hidden / "lock")
        assert fd is not None  # a fresh file nobody else knows
        about = {"server": server, "host": socket.gethostname(), "pid": os.getpid(),
                 "started": time.time()}
        (hidden / "about.json").write_text(json.dumps(about))
        (hidden / "journal").touch()
        os.rename(hidden, server_dir / name)
        return cls(server_dir / name, fd, about=about)

    @classmethod
    def claim(cls, folder: Path) -> Journal | None:
        """The journal in ``folder``, locked for this process; None while another process
        holds it, or once it is gone (sent and removed meanwhile)."""
        fd = _lock(folder / "lock")
        if fd is None:
            return None
        if not (folder / "journal").exists():  # sent and removed by the process that held it
            shutil.rmtree(folder, ignore_errors=True)  # what our lock file may have left
            os.close(fd)
            return None
        try:
            about = json.loads((folder / "about.json").read_text())
        except (OSError, ValueError):
            about = {}
        size = sum(p.stat().st_size for p in [folder / "journal", *folder.glob("blobs/*")])
        return cls(folder, fd, size, about)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.lock_fd)

    @property
    def name(self) -> str:
        return self.folder.name

    # -- writing ---------------------------------------------------------------------------
    def append(self, entries: list[tuple[dict[str, Any], bytes | str | None]]) -> None:
        """Append records, each with the bytes or the file a blob record stores, or none.
        All or nothing: JournalFullError if they would take the journal past
        TYMPAN_SPOOL_DISK_MB, and from then on (an empty journal takes them anyway, so a batch
        half sent is never split again), OSError if the disk refuses them (nothing is kept
        then)."""
        lines = [_line(record) for record, _ in entries]
        blobs = [(r["sha256"], r["size"], src) for r, src in entries if r["op"] == "blob"]
        needed = sum(map(len, lines)) + sum(size for _, size, _ in blobs)
        limit = settings.get("TYMPAN_SPOOL_DISK_MB") << 20
        if self.full or (self.size and self.size + needed > limit):
            self.full = True
            raise JournalFullError(
                f"the disk spool {self.folder} holds {self.size / 2**20:.1f} MiB, the most "
                f"TYMPAN_SPOOL_DISK_MB={limit >> 20} allows")
        for sha, _, source in blobs:
            self._keep_blob(sha, source)
        path = self.folder / "journal"
        before = path.stat().st_size
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"".join(lines))
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, before)  # no half record in front of the next append
            raise
        finally:
            os.close(fd)
        self.size += needed

    def _keep_blob(self, sha: str, source: bytes | str | None) -> None:
        target = self.blob_path(sha)
        if target.exists():
            return
        partial = target.with_name(f".{sha}.part")
        if isinstance(source, bytes):
            partial.write_bytes(source)
        else:
            assert source is not None
            shutil.copyfile(source, partial)
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.rename(partial, target)

    def blob_path(self, sha: str) -> Path:
        return self.folder / "blobs" / sha

    # -- reading ---------------------------------------------------------------------------
    def sent(self) -> int:
        try:
            return int((self.folder / "sent").read_text())
        except (OSError, ValueError):
            return 0

    def mark_sent(self, offset: int) -> None:
        partial = self.folder / ".sent.part"
        partial.write_text(str(offset))
        os.replace(partial, self.folder / "sent")

    def records(self, reading: Reading, start: int | None = None) -> Iterator[Record]:
        """The records from ``start`` (default: the first one not sent), in order, up to the
        end or the first damaged one; ``reading`` tells which it was."""
        offset = self.sent() if start is None else start
        with open(self.folder / "journal", "rb") as f:
            f.seek(offset)
            for line in f:
                end = offset + len(line)
                data = _parse(line)
                if data is None:
                    rest = os.fstat(f.fileno()).st_size - offset
                    reading.cut_short = not line.endswith(b"\n")
                    reading.problem = (
                        f"journal {self.folder}: its last record is cut short ({rest} bytes): "
                        "its process died while writing it" if reading.cut_short else
                        f"journal {self.folder}: the record at byte {offset} is damaged; "
                        f"{rest} bytes from there on are not sent")
                    return
                reading.records += 1
                yield Record(offset, end, data)
                offset = end

    # -- when done -------------------------------------------------------------------------
    def remove(self) -> None:
        """Delete the journal (its file first, so a sync that locks it next sees it is gone),
        then let go of its lock."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / "journal")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.release()

    def set_aside(self) -> Path:
        """Rename a damaged journal so that no sync sends it again; returns its new path."""
        target = self.folder.with_name(self.folder.name + DAMAGED)
        os.rename(self.folder, target)
        self.release()
        return target


def journals(server_dir: Path) -> list[Path]:
    """The journals waiting for a server, oldest first (damaged ones set aside excluded)."""
    if not server_dir.is_dir():
        return []
    return sorted(p for p in server_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and not p.name.endswith(DAMAGED))


def set_aside(server_dir: Path) -> list[Path]:
    """The journals set aside as damaged, kept for a person to look at."""
    if not server_dir.is_dir():
        return []
    return sorted(p for p in server_dir.iterdir() if p.name.endswith(DAMAGED))


def _lock(path: Path) -> int | None:
    """A file descriptor holding the lock, or None: another process holds it, or the journal
    was removed meanwhile."""
    import fcntl  # POSIX only: imported here so that remote logging loads without it

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _line(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    return b"%08x %s\n" % (zlib.crc32(text), text)


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n") or len(line) < 11 or line[8:9] != b" ":
        return None
    text = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(text):
            return None
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("op") in {"blob", "call"} else None


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in text)[:40]
