"""The local executor: a pool of subprocesses on this machine."""

from __future__ import annotations

import time

from tympan.errors import InvalidInputError
from tympan.study.executors import TrialJob, TrialResult
from tympan.study.executors._process import TrialProcess

_POLL = 0.05


class LocalExecutor:
    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise InvalidInputError(f"--workers must be 1 or more, got {workers}")
        self.slots = workers
        self._running: dict[int, TrialProcess] = {}
        self._unstarted: list[TrialResult] = []  # reported by the next wait()

    def start(self, job: TrialJob) -> None:
        try:
            self._running[job.trial_id] = TrialProcess(job)
        except OSError as exc:  # e.g. the command does not exist
            self._unstarted.append(TrialResult(job.trial_id, None, 0.0, b"",
                                               error=f"cannot start {job.argv[0]}: {exc}"))

    def wait(self, timeout: float) -> list[TrialResult]:
        deadline = time.monotonic() + timeout
        while True:
            done, self._unstarted = self._unstarted, []
            for trial_id, proc in list(self._running.items()):
                if proc.poll():
                    del self._running[trial_id]
                    code, seconds, output = proc.collect()
                    done.append(TrialResult(trial_id, code, seconds, output, proc.timed_out))
            if done or not self._running or time.monotonic() >= deadline:
                return done
            time.sleep(_POLL)

    def shutdown(self) -> None:
        for proc in self._running.values():
            proc.stop()
            proc.collect()
        self._running.clear()
