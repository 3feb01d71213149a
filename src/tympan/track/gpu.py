"""GPU utilisation and memory through NVML, the NVIDIA driver's own library, by ctypes.

No Python package is needed: ``libnvidia-ml.so.1`` ships with the driver, so a machine with
an NVIDIA GPU has it and one without simply has no GPU metrics. Only the few calls below are
bound; their structs have kept their layout since NVML's first release.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

_LIBRARIES = ("libnvidia-ml.so.1", "libnvidia-ml.so", "nvml.dll")
_TEMPERATURE_GPU = 0


class _Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong),
                ("used", ctypes.c_ulonglong)]


@dataclass(frozen=True)
class GpuSample:
    index: int
    utilization: float  # percent of time a kernel ran over the driver's last sample period
    memory_used: int  # bytes
    memory_total: int  # bytes
    temperature: float | None  # degrees C
    power: float | None  # watts


class Nvml:
    """The driver's NVML, initialised once; ``None`` from :func:`open_nvml` without a GPU."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        count = ctypes.c_uint()
        self._check(lib.nvmlDeviceGetCount_v2(ctypes.byref(count)))
        self.handles = []
        for i in range(count.value):
            handle = ctypes.c_void_p()
            self._check(lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)))
            self.handles.append(handle)

    @staticmethod
    def _check(status: int) -> None:
        if status != 0:
            raise OSError(f"NVML call failed with status {status}")

    def sample(self) -> list[GpuSample]:
        out = []
        for i, handle in enumerate(self.handles):
            util, memory = _Utilization(), _Memory()
            self._check(self._lib.nvmlDeviceGetUtilizationRates(handle, ctypes.byref(util)))
            self._check(self._lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)))
            temperature, milliwatts = ctypes.c_uint(), ctypes.c_uint()
            has_temperature = self._lib.nvmlDeviceGetTemperature(
                handle, _TEMPERATURE_GPU, ctypes.byref(temperature)) == 0
            has_power = self._lib.nvmlDeviceGetPowerUsage(handle, ctypes.byref(milliwatts)) == 0
            out.append(GpuSample(i, float(util.gpu), int(memory.used), int(memory.total),
                                 float(temperature.value) if has_temperature else None,
                                 milliwatts.value / 1000.0 if has_power else None))
        return out


_nvml: Nvml | None = None
_opened = False
_lock = threading.Lock()


def open_nvml() -> Nvml | None:
    """The process's NVML, or None where there is no NVIDIA driver or no GPU."""
    global _nvml, _opened
    with _lock:
        if not _opened:
            _opened = True
            _nvml = _load()
        return _nvml


def _load() -> Nvml | None:
    for name in _LIBRARIES:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if lib.nvmlInit_v2() != 0:
                return None
            nvml = Nvml(lib)
        except (OSError, AttributeError):
            return None
        return nvml if nvml.handles else None
    return None
