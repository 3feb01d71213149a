"""System metrics, sampled in the background while a run is open.

Every ``TYMPAN_SYSTEM_INTERVAL`` seconds (and once more at ``finish()``) a daemon thread reads
the machine's and this process's CPU and memory, disk and network throughput since the last
sample (psutil), and each NVIDIA GPU's utilisation, memory, temperature and power (NVML,
``gpu.py``), and records them as metrics under ``system/``. A sample is stamped with the
run's current step (the last step logged) and the wall time, so system charts line up with
training curves; it is appended to the run's buffers directly, never through ``Run.log``, so
it cannot move the step a training loop's next ``log()`` takes.

A sample costs about a millisecond of one core or less (docs/benchmarks.md), every 10 s by
default. ``TYMPAN_SYSTEM_METRICS=0`` or ``tympan.init(system_metrics=False)`` turns it off.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tympan.track.run import Run

log = logging.getLogger("tympan")

PREFIX = "system/"
_GB = 1024**3
_MB = 1024**2


class SystemMetrics:
    """Reads one sample of the machine, this process and its GPUs as ``{key: number}``."""

    def __init__(self) -> None:
        import psutil

        from tympan.track.gpu import open_nvml

        self._psutil = psutil
        self._process = psutil.Process()
        self._nvml = open_nvml()
        self._process.cpu_percent(None)  # the first call only starts the clock
        psutil.cpu_percent(None)
        self._last = (time.monotonic(), self._disk(), self._net())

    def _disk(self) -> Any:
        try:
            return self._psutil.disk_io_counters()
        except (OSError, RuntimeError):  # containers without /proc/diskstats
            return None

    def _net(self) -> Any:
        try:
            return self._psutil.net_io_counters()
        except (OSError, RuntimeError):
            return None

    def sample(self) -> dict[str, float]:
        ps = self._psutil
        memory = ps.virtual_memory()
        with self._process.oneshot():
            process_cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
            threads = self._process.num_threads()
        out = {
            "cpu_percent": ps.cpu_percent(None),
            "memory_percent": memory.percent,
            "memory_used_gb": (memory.total - memory.available) / _GB,
            "process_cpu_percent": process_cpu,
            "process_rss_gb": rss / _GB,
            "process_threads": float(threads),
        }
        now, disk, net = time.monotonic(), self._disk(), self._net()
        then, last_disk, last_net = self._last
        seconds = max(now - then, 1e-6)
        if disk is not None and last_disk is not None:
            out["disk_read_mb_s"] = max(disk.read_bytes - last_disk.read_bytes, 0) / _MB / seconds
            out["disk_write_mb_s"] = (max(disk.write_bytes - last_disk.write_bytes, 0)
                                      / _MB / seconds)
        if net is not None and last_net is not None:
            out["net_recv_mb_s"] = max(net.bytes_recv - last_net.bytes_recv, 0) / _MB / seconds
            out["net_sent_mb_s"] = max(net.bytes_sent - last_net.bytes_sent, 0) / _MB / seconds
        self._last = (now, disk, net)
        if self._nvml is not None:
            for gpu in self._nvml.sample():
                at = f"gpu.{gpu.index}."
                out[at + "utilization_percent"] = gpu.utilization
                out[at + "memory_used_gb"] = gpu.memory_used / _GB
                out[at + "memory_percent"] = 100.0 * gpu.memory_used / max(gpu.memory_total, 1)
                if gpu.temperature is not None:
                    out[at + "temperature_c"] = gpu.temperature
                if gpu.power is not None:
                    out[at + "power_w"] = gpu.power
        return {PREFIX + key: float(value) for key, value in out.items()}


class SystemMonitor:
    """The background thread that samples :class:`SystemMetrics` into one run."""

    def __init__(self, run: Run, interval: float) -> None:
        self.run = run
        self.interval = interval
        self.metrics = SystemMetrics()
        self._stop = threading.Event()
        self._failed = False
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=f"tympan-system-{run.id}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._record()

    def _record(self) -> None:
        if self._failed:
            return
        try:
            values = self.metrics.sample()
        except Exception as exc:  # a sensor that fails must never stop training
            log.warning("tympan: run %s: system metrics stopped: %s", self.run.id, exc)
            self._failed = True
            self._stop.set()
            return
        self.run._record_at_current_step(values)

    def stop(self) -> None:
        """Stop the thread and take a last sample (a run shorter than the interval has one)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._thread.join(self.interval + 5)
        self._record()


def start_monitor(run: Run, enabled: bool | None) -> SystemMonitor | None:
    """A monitor for ``run`` unless system metrics are off (``enabled`` False, or None and
    TYMPAN_SYSTEM_METRICS off)."""
    from tympan import settings

    if enabled is None:
        enabled = settings.get("TYMPAN_SYSTEM_METRICS")
    if not enabled:
        return None
    return SystemMonitor(run, settings.get("TYMPAN_SYSTEM_INTERVAL"))
