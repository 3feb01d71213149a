"""The Ray executor: each trial is a Ray task holding the trial's CPUs and (fractional)
GPUs while its command runs as a child process of the Ray worker.

Ray sets ``CUDA_VISIBLE_DEVICES`` for a task that holds GPUs, so several small trials can
share one GPU (``gpus: 0.25``). Nodes need the project's folder at the same path and a store
they can reach: a team server (``TYMPAN_STORE=http://...``; the trials get its address and
the runner's token), PostgreSQL, or a SQLite file on a shared disk.
"""

from __future__ import annotations

import time
from typing import Any

from tympan.errors import MissingDependencyError, StudyError, TympanError
from tympan.study.executors import TrialJob, TrialResult

_RAY_MISSING = "the ray executor needs Ray: pip install 'tympan[ray]'"


def _run_trial(job: TrialJob) -> tuple[int | None, float, bytes, bool]:
    """Runs on a Ray worker: the trial as a child process, polled until it ends."""
    import sys

    from tympan.study.executors._process import TrialProcess

    proc = TrialProcess(job, python=sys.executable)
    try:
        while not proc.poll():
            time.sleep(0.05)
    except BaseException:  # the task was cancelled: take the trial down with it
        proc.stop()
        raise
    code, seconds, output = proc.collect()
    return code, seconds, output, proc.timed_out


def check_reachable(address: str, error: type[TympanError] = StudyError) -> None:
    """Fail in seconds, not minutes: ray.init() retries an unreachable address for long.
    ``auto`` (the cluster this machine knows of) is left to Ray."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            return
    except (OSError, ValueError) as exc:
        raise error(f"cannot connect to Ray at {address}: {exc} (start it with `ray start "
                    "--head`, or leave out --address for a local Ray)") from None


class RayExecutor:
    def __init__(self, workers: int | None, address: str | None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError(_RAY_MISSING) from exc
        self._ray = ray
        self._started_ray = not ray.is_initialized()
        if self._started_ray and address is not None:
            check_reachable(address)
        if self._started_ray:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a new local Ray instance"
                raise StudyError(f"cannot connect to Ray at {where}: {exc}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = workers or max(1, cpus)
        self._remote = ray.remote(_run_trial)
        self._pending: dict[Any, TrialJob] = {}

    def start(self, job: TrialJob) -> None:
        task = self._remote.options(num_cpus=job.cpus, num_gpus=job.gpus, max_retries=0)
        self._pending[task.remote(job)] = job

    def wait(self, timeout: float) -> list[TrialResult]:
        if not self._pending:
            return []
        ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        results = []
        for ref in ready:
            job = self._pending.pop(ref)
            try:
                code, seconds, output, timed_out = self._ray.get(ref)
            except Exception as exc:  # worker died, node lost, task error
                results.append(TrialResult(job.trial_id, None, 0.0, b"",
                                           error=f"Ray task failed: {exc}"))
                continue
            results.append(TrialResult(job.trial_id, code, seconds, output, timed_out))
        return results

    def shutdown(self) -> None:
        for ref in self._pending:
            self._ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started_ray:
            self._ray.shutdown()
