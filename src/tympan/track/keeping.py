"""Keeping a run's files (artifacts, audio, images, tables) when its store cannot take them.

A file logged as an artifact is copied into the store at the call, so overwriting it right
after (``last.pt``) cannot change what was recorded. When that copy fails because the store's
disk is full or read-only, the file is read into memory instead and stored later by the writer,
like points waiting for an unwritable store: training never sees the ``OSError``, the user is
warned once, and storing it is retried until the store takes it. Audio, images and tables are
encoded by the writer thread, once, and wait the same way.

What waits in memory is bounded by ``TYMPAN_SPOOL_MB`` (the writer's :class:`Spool`): past it
a file is not recorded and a warning names it. An artifact logged again under the same path
makes the copy still waiting moot, so a checkpoint saved every epoch to a full disk holds one
copy, not one per epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tympan.errors import InvalidInputError
from tympan.track.commands import Command
from tympan.track.transport import Blob, Transport
from tympan.track.writer import Writer

log = logging.getLogger("tympan")


def keep_artifact(writer: Writer, transport: Transport, run_id: str, path: str,
                  source: Path | bytes, media_type: str) -> None:
    """Copy ``source`` (a file or bytes) into the store now and record it as artifact ``path``
    of the run once the metrics logged before it are stored."""
    created = time.time()
    label = f"artifact {path}"
    try:
        blob = (transport.keep_bytes(source) if isinstance(source, bytes)
                else transport.keep_file(source))
    except OSError as exc:  # the store's disk is full or read-only: keep a copy in memory
        data = source if isinstance(source, bytes) else _read(source)
        writer.unwritable(transport, exc)
        if not writer.spool.hold(len(data)):
            _not_kept(writer, transport, run_id, label, len(data))
            return
        kept: list[Blob] = []
        writer.submit(Command(
            transport, lambda t: t.record_artifact(run_id, path, kept[0], media_type, created),
            label, prepare=lambda: kept.append(transport.keep_bytes(data)), held=len(data),
            replaces=(run_id, path),
        ))
        return
    writer.submit(Command(
        transport, lambda t: t.record_artifact(run_id, path, blob, media_type, created), label,
        replaces=(run_id, path),
    ))


def keep_encoded(writer: Writer, transport: Transport, run_id: str, label: str, size: int,
                 encode: Callable[[], bytes], record: Callable[[Transport, Blob], Any]) -> None:
    """Encode in the writer thread (once, however often storing it is retried), store the
    bytes, then ``record(transport, blob)``. ``size`` is what the data waiting takes."""
    if not writer.spool.hold(size):
        _not_kept(writer, transport, run_id, label, size)
        return
    waiting: dict[str, Any] = {"encode": encode}  # becomes {"bytes": ...} once encoded
    kept: list[Blob] = []

    def keep() -> None:
        if "bytes" not in waiting:
            waiting["bytes"] = waiting.pop("encode")()  # drops the raw data it held
        kept.append(transport.keep_bytes(waiting["bytes"]))

    writer.submit(Command(transport, lambda t: record(t, kept[0]), label, prepare=keep,
                          held=size))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read artifact {str(path)!r}: {exc.strerror}") from None


def _not_kept(writer: Writer, transport: Transport, run_id: str, label: str,
              size: int) -> None:
    log.warning(
        "tympan: run %s: %s (%.1f MiB) is not recorded: %.1f MiB of files already wait in "
        "memory for the store at %s, the most TYMPAN_SPOOL_MB=%d allows", run_id, label,
        size / 2**20, writer.spool.held / 2**20, transport.where, writer.spool.limit >> 20,
    )
