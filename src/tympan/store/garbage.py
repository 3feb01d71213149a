"""Collecting blob files nothing refers to: ``tympan db gc``.

A blob is written before the record that points at it (the record lands with the metrics
logged before it), so a process killed in between leaves a blob no record names; a blob can
also outlive its records (an artifact logged again under the same name, a deleted run), and
a copy killed half way leaves a temporary ``.incoming-*`` file. Every column of the schema
named ``*sha256`` (artifacts, model versions, trial logs, and any added later under that
name) counts as a reference.

Only files older than ``older_than`` seconds are collected, so a live writer's fresh blob
whose record has not landed yet is never taken: writers touch a blob each time they try to
record it (``BlobStore.touch``), and a collection re-reads a file's age just before
deleting it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select

from tympan.store import Store
from tympan.store.blobs import BlobFile
from tympan.store.schema import blobs, metadata

_BATCH = 500  # rows deleted per statement


@dataclass(frozen=True)
class Collected:
    """What a collection found (and, unless it was a dry run, removed)."""

    orphans: int  # blob files no record ever named
    unreferenced: int  # blobs whose records are gone (replaced artifacts, deleted runs)
    unfinished: int  # temporary files of copies that never finished
    bytes: int
    kept_fresh: int  # unreferenced files younger than the threshold, kept

    @property
    def files(self) -> int:
        return self.orphans + self.unreferenced + self.unfinished


def references(conn: Connection) -> set[str]:
    """Every sha256 a record of this store refers to."""
    found: set[str] = set()
    for table in metadata.sorted_tables:
        if table is blobs:
            continue
        for column in table.columns:
            if column.name == "sha256" or column.name.endswith("_sha256"):
                stmt = select(column).where(column.is_not(None)).distinct()
                found.update(conn.execute(stmt).scalars())
    return found


def still_named(conn: Connection, shas: set[str]) -> set[str]:
    """Those of ``shas`` some record of this store still refers to."""
    found: set[str] = set()
    wanted = sorted(shas)
    for table in metadata.sorted_tables:
        if table is blobs:
            continue
        for column in table.columns:
            if column.name == "sha256" or column.name.endswith("_sha256"):
                for i in range(0, len(wanted), _BATCH):
                    stmt = select(column).where(column.in_(wanted[i:i + _BATCH])).distinct()
                    found.update(conn.execute(stmt).scalars())
    return found


def collect_released(store: Store, shas: set[str], cutoff: float) -> tuple[int, int]:
    """Remove the blobs of ``shas`` that no record names any more (the blobs of records just
    deleted): their ``blobs`` rows, and their files unless a writer touched them after
    ``cutoff`` (it is recording the same content again). (files removed, bytes freed); on an
    object-store root only the rows go (its lifecycle rules expire the objects)."""
    if not shas:
        return 0, 0
    with store.write() as conn:
        released = sorted(shas - still_named(conn, shas))
        for i in range(0, len(released), _BATCH):
            conn.execute(delete(blobs).where(blobs.c.sha256.in_(released[i:i + _BATCH])))
    if not store.blobs.is_local:
        return 0, 0
    removed = freed = 0
    for sha in released:
        path = store.blobs.path(sha)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            continue
        if store.blobs.remove_if_older(BlobFile(path, sha, size, 0.0), cutoff):
            removed += 1
            freed += size
    return removed, freed


def collect(store: Store, *, older_than: float, dry_run: bool) -> Collected:
    """Remove (or with ``dry_run`` only count) the blob files no record refers to that are
    older than ``older_than`` seconds, and the ``blobs`` rows of those that had one."""
    cutoff = time.time() - older_than
    files = list(store.blobs.files())
    with store.write() as conn:
        referenced = references(conn)
        recorded = set(conn.execute(select(blobs.c.sha256)).scalars())
        victims: list[BlobFile] = []
        fresh = 0
        for file in files:
            if file.sha256 is not None and file.sha256 in referenced:
                continue
            if file.mtime > cutoff:
                fresh += 1
                continue
            victims.append(file)
        rows = [f.sha256 for f in victims if f.sha256 in recorded]
        if not dry_run:
            for i in range(0, len(rows), _BATCH):
                conn.execute(delete(blobs).where(blobs.c.sha256.in_(rows[i:i + _BATCH])))
    if not dry_run:  # after the rows: a writer recording one now has touched it (fresh again)
        victims = [f for f in victims if store.blobs.remove_if_older(f, cutoff)]
    return Collected(
        orphans=sum(1 for f in victims if f.sha256 is not None and f.sha256 not in recorded),
        unreferenced=sum(1 for f in victims if f.sha256 in recorded),
        unfinished=sum(1 for f in victims if f.sha256 is None),
        bytes=sum(f.size for f in victims),
        kept_fresh=fresh,
    )
