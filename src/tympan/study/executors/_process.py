"""One trial as a child process: its own session (so its whole process group can be
stopped), killed with its parent on Linux, output to a file, a deadline."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO

from tympan.study.executors import TrialJob, tail

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class TrialProcess:
    def __init__(self, job: TrialJob, python: str = sys.executable) -> None:
        self.job = job
        self.started = time.monotonic()
        self.output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in collect()
        argv = list(job.argv)
        if argv and argv[0] == "{python}":
            argv[0] = python
        env = {**os.environ, **job.env}
        self.process = subprocess.Popen(
            argv, cwd=job.cwd, env=env, stdin=subprocess.DEVNULL, stdout=self.output,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        self.timed_out = False

    def poll(self) -> bool:
        """True once the process has ended (stopping it first if its deadline passed)."""
        if self.process.poll() is not None:
            return True
        timeout = self.job.timeout
        if timeout is not None and time.monotonic() - self.started > timeout:
            self.timed_out = True
            self.stop()
            return True
        return False

    def stop(self) -> None:
        """SIGTERM to the trial's process group, SIGKILL after 5 s."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue

    def collect(self) -> tuple[int | None, float, bytes]:
        self.process.wait()
        self.output.seek(0)
        data = tail(self.output.read())
        self.output.close()
        code = None if self.timed_out else self.process.returncode
        return code, time.monotonic() - self.started, data
