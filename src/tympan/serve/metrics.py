"""Prometheus metrics of one serving process (``GET /metrics``), in their own registry.

Every metric of what a version did carries the labels ``model``, ``version`` and ``role``
(``champion``, or ``challenger`` for the version a split sends its share to), so a
champion/challenger split can be compared on one dashboard:

- ``tympan_serve_requests_total{status}``: answered requests by HTTP status (200, or 422
  when the guard rejected one);
- ``tympan_serve_request_seconds``: a request's time in the server, body read to answer;
- ``tympan_serve_queue_seconds``: its wait for a batch; ``tympan_serve_batch_seconds``: a
  batch's forward pass with the guard; ``tympan_serve_guard_seconds``: the guard's scoring;
- ``tympan_serve_batch_size`` and ``tympan_serve_batch_audio_seconds``: what batches held;
- ``tympan_serve_guard_flagged_total``, ``tympan_serve_guard_p_value``: per request;
- ``tympan_serve_drift_alarm`` (0/1), ``tympan_serve_drift_window_p_value``,
  ``tympan_serve_drift_windows_total``: the windowed drift test (``drift.py``);
- ``tympan_serve_traffic_share``: the share of requests the split sends to the version (1
  without a split);
- ``tympan_serve_model_info{model,version,role,runtime}``: what is served.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
_AUDIO = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_P = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
LABELS = ("model", "version", "role")


class ServingMetrics:
    """The metric families of a server; ``version(...)`` gives one version's metrics."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()

        def histogram(name: str, text: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, text, LABELS, buckets=buckets, registry=r)

        self.requests = Counter("tympan_serve_requests", "Answered requests by status",
                                (*LABELS, "status"), registry=r)
        self.request_seconds = histogram("tympan_serve_request_seconds",
                                         "Request time in the server", _LATENCY)
        self.queue_seconds = histogram("tympan_serve_queue_seconds",
                                       "Time a request waited for its batch", _LATENCY)
        self.batch_seconds = histogram("tympan_serve_batch_seconds",
                                       "A batch's forward pass, guard included", _LATENCY)
        self.guard_seconds = histogram("tympan_serve_guard_seconds",
                                       "The guard's scoring of a batch", _LATENCY)
        self.batch_size = histogram("tympan_serve_batch_size", "Requests per batch", _SIZES)
        self.batch_audio = histogram("tympan_serve_batch_audio_seconds",
                                     "Seconds of audio per batch", _AUDIO)
        self.flagged = Counter("tympan_serve_guard_flagged", "Requests the guard flagged",
                               LABELS, registry=r)
        self.p_value = histogram("tympan_serve_guard_p_value",
                                 "Combined anomaly p-value of each request", _P)
        self.drift_alarm = Gauge("tympan_serve_drift_alarm",
                                 "1 while the latest traffic window is a drift discovery",
                                 LABELS, registry=r)
        self.drift_p = Gauge("tympan_serve_drift_window_p_value",
                             "p-value of the latest closed traffic window", LABELS, registry=r)
        self.drift_windows = Counter("tympan_serve_drift_windows", "Traffic windows tested",
                                     LABELS, registry=r)
        self.share = Gauge("tympan_serve_traffic_share",
                           "Share of the requests the split sends to the version", LABELS,
                           registry=r)
        self.info = Gauge("tympan_serve_model_info", "The served versions (always 1)",
                          (*LABELS, "runtime"), registry=r)

    def version(self, model: str, version: int, role: str, runtime: str, share: float
                ) -> VersionMetrics:
        """The metrics of ``models:/MODEL/VERSION`` serving as ``role`` and taking ``share``
        of the requests."""
        labels = (model, str(version), role)
        self.info.labels(*labels, runtime).set(1)
        self.share.labels(*labels).set(share)
        return VersionMetrics(self, labels)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class VersionMetrics:
    """One version's metrics, its labels bound (the names are the families')."""

    def __init__(self, families: ServingMetrics, labels: tuple[str, str, str]) -> None:
        self._requests = families.requests
        self.labels = labels
        for name in ("request_seconds", "queue_seconds", "batch_seconds", "guard_seconds",
                     "batch_size", "batch_audio", "flagged", "p_value", "drift_alarm",
                     "drift_p", "drift_windows"):
            setattr(self, name, getattr(families, name).labels(*labels))

    def answered(self, status: int, seconds: float | None = None) -> None:
        """A request this version answered with HTTP ``status`` after ``seconds``."""
        self._requests.labels(*self.labels, str(status)).inc()
        if seconds is not None:
            self.request_seconds.observe(seconds)

    def batch(self, stats: Any) -> None:
        self.batch_size.observe(stats.size)
        self.batch_audio.observe(stats.seconds)
        self.batch_seconds.observe(stats.took)
        for waited in stats.waited:
            self.queue_seconds.observe(waited)
