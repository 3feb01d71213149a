"""Content-addressed blob storage: a blob's name is the sha256 of its bytes.

Local roots write to a temporary file and rename it into place, so a crash never leaves a
half-written blob under a valid name. Other roots (``s3://...``) go through fsspec, whose
object stores make a put atomic by themselves.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tympan.errors import MissingDependencyError, StoreError, StoreUnavailableError

_CHUNK = 1 << 20


def copy_hashing(src: IO[bytes], out: IO[bytes]) -> tuple[str, int]:
    """Copy ``src`` to ``out`` in chunks; (sha256 hex, size) of what was copied, so a file is
    read once to both store and name it."""
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


@dataclass(frozen=True)
class BlobFile:
    """A file under a local blob root: a blob (``sha256`` set) or an unfinished copy (None)."""

    path: str
    sha256: str | None
    size: int
    mtime: float


_TEMPORARY = ".incoming-"
_HEX = frozenset("0123456789abcdef")


class BlobStore:
    """Blobs under one root, laid out as ``ab/cdef...`` by hash."""

    def __init__(self, root: str) -> None:
        self.root = root.removeprefix("file://") if _is_local(root) else root.rstrip("/")

    @property
    def is_local(self) -> bool:
        """Whether the root is a local directory (not an object store)."""
        return _is_local(self.root)

    def path(self, sha256: str) -> str:
        return f"{self.root}/{sha256[:2]}/{sha256[2:]}"

    def check_client(self) -> None:
        """Fail now, naming the extra to install, when no fsspec client for this root's
        scheme is installed (s3:// needs s3fs): a server would otherwise start and refuse
        every upload. Contacts nothing."""
        if _is_local(self.root):
            return
        import fsspec

        with object_store_errors(self.root):
            fsspec.get_filesystem_class(self.root.split("://", 1)[0])

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        sha = hashlib.sha256(data).hexdigest()
        if not self.exists(sha):
            self._write(sha, lambda out: out.write(data))
        return sha, len(data)

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Copy a file in; hashes while copying so the file is read once."""
        if not _is_local(self.root):
            data = Path(source).read_bytes()
            return self.put_bytes(data)
        Path(self.root).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=_TEMPORARY)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                sha, size = copy_hashing(src, out)
                out.flush()
                os.fsync(out.fileno())
            target = Path(self.path(sha))
            if target.exists():
                os.unlink(tmp)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)
            return sha, size
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def exists(self, sha256: str) -> bool:
        if _is_local(self.root):
            return os.path.exists(self.path(sha256))
        with object_store_errors(self.root):
            return self._fs().exists(self.path(sha256))

    def open(self, sha256: str) -> IO[bytes]:
        if _is_local(self.root):
            return open(self.path(sha256), "rb")
        with object_store_errors(self.root):
            return self._fs().open(self.path(sha256), "rb")

    def read(self, sha256: str) -> bytes:
        with object_store_errors(self.root), self.open(sha256) as f:
            return f.read()

    def read_range(self, sha256: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of a blob: one ranged GET on an object store,
        so seeking in a long recording does not download all of it."""
        if _is_local(self.root):
            with open(self.path(sha256), "rb") as f:
                f.seek(start)
                return f.read(max(0, end - start))
        with object_store_errors(self.root):
            return self._fs().cat_file(self.path(sha256), start=start, end=end)

    def copy_to(self, sha256: str, dest: str | os.PathLike[str]) -> None:
        with self.open(sha256) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)

    def touch(self, sha256: str) -> None:
        """Mark a blob as in use now, so a collection (``garbage.py``) leaves it alone: its
        record is about to land. Object stores cannot be touched; their collection goes by
        the age threshold alone."""
        if _is_local(self.root):
            os.utime(self.path(sha256))

    def files(self) -> Iterator[BlobFile]:
        """Every blob and unfinished copy under a local root; anything else there is not
        tympan's and is left out."""
        self._local_only("listing blob files")
        if not os.path.isdir(self.root):
            return
        for entry in os.scandir(self.root):
            if entry.is_file() and entry.name.startswith(_TEMPORARY):
                yield _blob_file(entry, None)
            elif entry.is_dir() and len(entry.name) == 2 and set(entry.name) <= _HEX:
                for item in os.scandir(entry.path):
                    if not item.is_file():
                        continue
                    if item.name.startswith(_TEMPORARY):
                        yield _blob_file(item, None)
                    elif len(item.name) == 62 and set(item.name) <= _HEX:
                        yield _blob_file(item, entry.name + item.name)

    def remove_if_older(self, file: BlobFile, cutoff: float) -> bool:
        """Delete ``file`` unless it changed (was touched) after ``cutoff``; True if deleted."""
        self._local_only("removing blob files")
        try:
            if os.stat(file.path).st_mtime > cutoff:
                return False
            os.unlink(file.path)
        except FileNotFoundError:
            return False
        return True

    def _local_only(self, what: str) -> None:
        if not _is_local(self.root):
            raise StoreError(
                f"{what} works on local artifact roots; {self.root} is an object store: let "
                "its lifecycle rules expire objects no record refers to"
            )

    def _write(self, sha: str, fill) -> None:
        if not _is_local(self.root):
            with object_store_errors(self.root), self._fs().open(self.path(sha), "wb") as out:
                fill(out)
            return
        target = Path(self.path(sha))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TEMPORARY)
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _fs(self):
        import fsspec

        with object_store_errors(self.root):
            fs, _ = fsspec.core.url_to_fs(self.root)
        return fs


def _blob_file(entry: os.DirEntry, sha256: str | None) -> BlobFile:
    stat = entry.stat()
    return BlobFile(entry.path, sha256, stat.st_size, stat.st_mtime)


_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "NoAuthTokenError")
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError")


@contextmanager
def object_store_errors(root: str) -> Iterator[None]:
    """An object store's failures as tympan errors that say what to do: no credentials, no
    access, no client library for the scheme, or a server that cannot be reached."""
    try:
        yield
    except ImportError as exc:
        raise MissingDependencyError(
            f"the artifact root {root} needs an fsspec client for its scheme ({exc}); for "
            "s3:// install tympan's s3 extra: pip install 'tympan[s3]'") from None
    except PermissionError as exc:
        raise StoreError(f"the artifact root {root} refused access ({exc}): check that the "
                         "credentials may read and write it") from None
    except Exception as exc:
        kind = type(exc).__name__
        if kind in _NO_CREDENTIALS:
            raise StoreError(
                f"no credentials for the artifact root {root} ({exc}): set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and AWS_ENDPOINT_URL for an "
                "S3-compatible server other than AWS") from None
        if kind in _UNREACHABLE:
            raise StoreUnavailableError(f"cannot reach the artifact root {root} ({exc})") from None
        raise
