"""The drift alarm: has recent traffic drifted away from the reference data?

Each request's combined p-value is (conformally) uniform or larger on clean traffic, so
about ``level`` of clean requests have p <= ``level``. Traffic is cut into consecutive
windows of ``window`` requests; a window that reaches ``window_seconds`` closes early if it
holds at least ``min_window`` requests (a quiet hour still gets tested, three requests never
do). A closed window is tested one-sided binomially: with k of its n requests at
p <= ``level``, its p-value is P(Binomial(n, level) >= k).

A window test on a fixed n does not fire on any large N as a test on all traffic would; but
a server tests window after window, and at 5% each one clean window in twenty would alarm.
Re-running Benjamini-Hochberg over all windows at each new one does not fix that: every
window is another look, and over 20 windows about 12% of clean servers alarm at FDR 5% (the
unit test measured it). So the alarm uses LOND (Javanmard & Montanari, 2018), the online form
of BH: window j alarms when its p-value is at most ``fdr * gamma_j * (discoveries so far +
1)``, with ``gamma_j = 6 / (pi^2 j^2)`` summing to 1. It controls the false discovery rate
over all windows at ``fdr`` at every moment (also under the positive dependence of conformal
p-values sharing one calibration set); on clean traffic the chance that a server ever alarms
is at most ``fdr``. Each discovery makes the next windows' levels more lenient, so drift that
persists keeps alarming; a long clean history makes the level stricter, so a server that
must catch slight drift after days should restart its windows (a new serving run).

Each window also reports, looking back once over all windows so far, which ones BH calls
drifted at ``fdr`` (``discoveries``): a retrospective summary for the serving run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowResult:
    index: int  # 0, 1, ... in the order windows closed
    requests: int
    low: int  # requests with p <= level
    p_value: float  # binomial test of this window
    alarm: bool  # this window is an online (LOND) discovery
    level: float  # the level this window was tested at
    windows: int  # windows tested so far
    discoveries: int  # windows BH rejects looking back over all of them now

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"window": self.index, "requests": self.requests, "low_p": self.low,
                "p_value": self.p_value, "alarm": self.alarm,
                "level": self.level, "windows": self.windows,
                "discoveries": self.discoveries}


def benjamini_hochberg(p_values: np.ndarray, fdr: float) -> np.ndarray:
    """Which hypotheses BH rejects at false discovery rate ``fdr`` (bool per p-value)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    below = p[order] <= fdr * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if below.any():
        reject[order[:np.nonzero(below)[0].max() + 1]] = True
    return reject


class DriftMonitor:
    """Windows of request p-values, tested as they close (thread-safe ``add``)."""

    def __init__(self, window: int = 100, min_window: int = 30, window_seconds: float = 60.0,
                 fdr: float = 0.05, level: float = 0.1) -> None:
        self.window, self.min_window, self.window_seconds = window, min_window, window_seconds
        self.fdr, self.level = fdr, level
        self._lock = threading.Lock()
        self._current: list[float] = []
        self._opened = time.monotonic()
        self._p: list[float] = []
        self._alarms = 0
        self.latest: WindowResult | None = None

    def add(self, p_values: list[float], now: float | None = None) -> list[WindowResult]:
        """Add requests' p-values; the windows that closed with them, tested."""
        now = time.monotonic() if now is None else now
        closed = []
        with self._lock:
            for p in p_values:
                if not self._current:
                    self._opened = now
                self._current.append(p)
                if len(self._current) >= self.window:
                    closed.append(self._close(now))
            if (self._current and len(self._current) >= self.min_window
                    and now - self._opened >= self.window_seconds):
                closed.append(self._close(now))
        return closed

    def _close(self, now: float) -> WindowResult:
        from scipy.special import bdtrc

        values = np.asarray(self._current)
        self._current = []
        self._opened = now
        n, low = len(values), int((values <= self.level).sum())
        p = 1.0 if low == 0 else float(bdtrc(low - 1, n, self.level))  # P(Bin(n, level) >= low)
        self._p.append(p)
        j = len(self._p)
        level = self.fdr * 6 / (np.pi**2 * j**2) * (self._alarms + 1)
        alarm = p <= level
        self._alarms += alarm
        looking_back = int(benjamini_hochberg(np.asarray(self._p), self.fdr).sum())
        self.latest = WindowResult(j - 1, n, low, p, alarm, level, j, looking_back)
        return self.latest

    @property
    def pending(self) -> int:
        """Requests in the window still open."""
        return len(self._current)
