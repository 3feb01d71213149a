"""Executors: where a study's trials run. ``local`` (subprocesses on this machine) and
``ray`` (tasks on a Ray cluster) ship through the same small protocol; the runner only
starts jobs, collects results and, when stopped, shuts the executor down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tympan.errors import InvalidInputError

OUTPUT_LIMIT = 1 << 20  # bytes of a trial's output kept (the tail)


@dataclass(frozen=True)
class TrialJob:
    trial_id: int
    argv: list[str]  # argv[0] is this interpreter; executors may swap in their own
    cwd: str
    env: dict[str, str]  # added to the worker's environment
    timeout: float | None
    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class TrialResult:
    trial_id: int
    returncode: int | None  # None: it did not exit by itself (timed out, or was stopped)
    seconds: float
    output: bytes = field(repr=False)  # stdout and stderr interleaved, the last OUTPUT_LIMIT
    timed_out: bool = False
    error: str | None = None  # the executor's own failure (could not start, worker died)


class Executor(Protocol):
    slots: int  # trials it runs at once

    def start(self, job: TrialJob) -> None: ...

    def wait(self, timeout: float) -> list[TrialResult]:
        """Results of jobs that ended since the last call; waits up to ``timeout`` seconds
        for at least one."""
        ...

    def shutdown(self) -> None:
        """Stop every running job (their results are not reported) and release resources."""
        ...


def make_executor(kind: str, workers: int | None, address: str | None) -> Executor:
    if kind == "local":
        from tympan.study.executors.local import LocalExecutor

        if address is not None:
            raise InvalidInputError("--address is for --executor ray")
        return LocalExecutor(workers or 1)
    if kind == "ray":
        from tympan.study.executors.ray_cluster import RayExecutor

        return RayExecutor(workers, address)
    raise InvalidInputError(f"unknown executor {kind!r}: use local or ray")


def tail(data: bytes) -> bytes:
    return data[-OUTPUT_LIMIT:]
