"""A real, small filesystem (a tmpfs mounted for one test) that a test can fill, free and make
read-only, to see what tympan does when its store's disk is full.

    with mounted_small_disk(tmp_path) as small_disk:
        small_disk.fill()            # ENOSPC from now on
        small_disk.leave_free(mib)   # exactly this much room
        small_disk.free()            # room again
        small_disk.read_only(True)   # EROFS until read_only(False)

Mounting needs root (CI runs as root); where it cannot mount, a test using it is skipped with
the reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIZE_MIB = 24


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / ".filler"

    def free_bytes(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    def fill(self) -> None:
        """Take every free byte, so the next write fails with ENOSPC."""
        self.leave_free(0)

    def leave_free(self, nbytes: int) -> None:
        """Keep (about) ``nbytes`` free and fill the rest."""
        self.free()
        with open(self._filler, "wb") as f:
            block = b"\0" * 65536
            with contextlib.suppress(OSError):  # ENOSPC: full
                while self.free_bytes() > nbytes:
                    f.write(block[: max(4096, min(len(block), self.free_bytes() - nbytes))])
                    f.flush()

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def read_only(self, flag: bool) -> None:
        mode = "ro" if flag else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True,
                       capture_output=True)


@contextmanager
def mounted_small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tympan-test-disk",
                        str(mount_point)], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {exc}")
    try:
        yield SmallDisk(mount_point)
    finally:
        from tympan.track.stores import close_stores

        close_stores()
        done = subprocess.run(["umount", str(mount_point)], capture_output=True)
        if done.returncode != 0:  # something still holds a file open: detach it anyway
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
