"""Serving through replicas: one or two versions of a model (champion and challenger), each
answered by its replicas, each with its own serving run and drift windows, behind the same
HTTP face as the embedded server (``app.py`` calls a ``Fleet`` as it calls a ``Service``).

The replicas of a version are Ray Serve replicas (``--engine ray``, ``ray_engine.py``) or one
``Replica`` in this process (a champion/challenger split on the embedded engine). Either way
a replica is the embedded engine's model code, batching and guard (``replica.py``); this
process keeps what must be one per version: the serving run it records to (the store is
written from here, never from a replica) and its drift monitor, and one Prometheus registry
for the whole server, whose series are labelled by version and role (``metrics.py``).

**The split.** ``--split P`` sends P% of requests to the challenger, decided by the request's
id: the first 8 bytes of SHA-256 of the ``X-Request-Id`` header (or of a random id the server
makes when there is none, and answers in the same header) read as a fraction of 2**64, below
P/100 goes to the challenger. So a client that sends its own ids is always answered by the
same version for the same id (a retried request does not switch versions), and random ids
split at P% on average. The answer names the version and its ``role``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from tympan.errors import InvalidInputError, TympanError
from tympan.serve.batching import ServerClosingError
from tympan.serve.config import CHALLENGER, CHAMPION, ServingConfig
from tympan.serve.drift import DriftMonitor
from tympan.serve.engine import Answer
from tympan.serve.metrics import ServingMetrics, VersionMetrics
from tympan.serve.replica import Replica, Served
from tympan.serve.service import drift_monitor, model_card, observe

log = logging.getLogger("tympan.serve")


class ReplicaUnavailableError(TympanError):
    """No replica could answer a request in time (answered 503): the replica that held it
    died and its retries failed too, or none answered within the request timeout."""


@dataclass(frozen=True)
class Split:
    """Send ``percent`` % of requests, chosen by their id, to ``challenger``."""

    challenger: str
    percent: float

    @classmethod
    def of(cls, config: ServingConfig) -> Split | None:
        if config.challenger is None or config.split is None:
            return None
        return cls(config.challenger, config.split)

    def to_challenger(self, request_id: str) -> bool:
        return challenger_share(request_id) < self.percent / 100


def challenger_share(request_id: str) -> float:
    """Where ``request_id`` falls in [0, 1): requests below the split's fraction go to the
    challenger."""
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Backend(Protocol):
    """The replicas of one version, reached from this process."""

    replicas: int
    address: str | None  # the Ray cluster's (GCS) address; None in this process

    @property
    def alive(self) -> bool: ...

    def describe(self) -> dict[str, Any]: ...

    def predict(self, wave: np.ndarray) -> Awaitable[Served]: ...

    def close(self) -> None: ...


class LocalBackend:
    """One ``Replica`` in this process (the embedded engine's split)."""

    replicas = 1
    address = None

    def __init__(self, model: str, config: ServingConfig) -> None:
        self.replica = Replica(model, config)

    @property
    def alive(self) -> bool:
        return self.replica.alive

    def describe(self) -> dict[str, Any]:
        return self.replica.describe()

    def predict(self, wave: np.ndarray) -> Awaitable[Served]:
        return self.replica.predict(wave)

    def close(self) -> None:
        self.replica.close()


class VersionView:
    """What the HTTP face reads of a served version (as it reads an ``Engine``), from the
    description a replica gave."""

    def __init__(self, version: Any, description: dict[str, Any]) -> None:
        self.version = version
        self._description = {k: v for k, v in description.items() if k != "sample_rate"}
        self.sample_rate = int(description["sample_rate"])
        self.runtime = description["runtime"]
        self.guard = description["guard"]  # its description, None when off

    def describe(self) -> dict[str, Any]:
        return dict(self._description)


@dataclass
class Lane:
    """One version: its role, its replicas, its drift windows and serving run."""

    role: str
    view: VersionView
    backend: Backend
    drift: DriftMonitor | None
    recorder: Any  # recording.ServingRun, or None with --no-record
    card: dict[str, Any] | None
    metrics: VersionMetrics | None = None  # set by the fleet


@dataclass(frozen=True)
class Routed(Answer):
    """An answer and the lane (version and role) that gave it."""

    lane: Lane | None = None


class Fleet:
    """Serves ``lanes`` (the champion first) as one server; ``engine_name`` is what
    ``GET /v1/model`` calls the engine (``ray`` or ``embedded``)."""

    def __init__(self, config: ServingConfig, lanes: list[Lane], split: Split | None,
                 engine_name: str, timeout: float,
                 on_close: Callable[[], None] | None = None) -> None:
        self.config = config
        self.lanes = lanes
        self.split = split
        self.engine_name = engine_name
        self.timeout = timeout
        self._on_close = on_close
        self.metrics = ServingMetrics()
        for lane in lanes:
            version = lane.view.version
            lane.metrics = self.metrics.version(version.model, version.version, lane.role,
                                                lane.view.runtime, self.share(lane))
        self.closing = False

    @classmethod
    def start(cls, config: ServingConfig, split: Split | None, engine_name: str,
              backends: Callable[[list[tuple[str, str]]], list[Backend]], timeout: float,
              on_close: Callable[[], None] | None = None) -> Fleet:
        """Resolve the champion (``config.model``) and the challenger to fixed versions, start
        their replicas with ``backends([(role, uri), ...])``, open their serving runs.
        ``on_close`` runs when the fleet closes, or when it fails to start."""
        lanes: list[Lane] = []
        try:
            versions = _versions(config, split)
            started = backends([(role, v.uri) for role, v in versions])
            for (role, version), backend in zip(versions, started, strict=True):
                lanes.append(Lane(role, VersionView(version, backend.describe()), backend,
                                  None, None, model_card(version.uri, config.store)))
            fleet = cls(config, lanes, split, engine_name, timeout, on_close)
            for lane in lanes:
                if lane.view.guard is not None:
                    lane.drift = drift_monitor(config.guard)
                if config.record:
                    from tympan.serve.recording import ServingRun

                    lane.recorder = ServingRun(lane.view.version, fleet.settings(lane),
                                               store=config.store,
                                               sample_rate=config.guard.sample_rate,
                                               seed=config.seed)
        except BaseException:
            for lane in lanes:
                lane.backend.close()
                if lane.recorder is not None:
                    lane.recorder.finish()
            if on_close is not None:
                on_close()
            raise
        return fleet

    # What app.py reads, as of a Service: the champion's engine, card and serving run.
    @property
    def engine(self) -> VersionView:
        return self.lanes[0].view

    @property
    def card(self) -> dict[str, Any] | None:
        return self.lanes[0].card

    @property
    def recorder(self) -> Any:
        return self.lanes[0].recorder

    @property
    def ready(self) -> bool:
        return not self.closing and all(lane.backend.alive for lane in self.lanes)

    def settings(self, lane: Lane | None = None) -> dict[str, Any]:
        """The serving settings (of ``lane``'s serving run; default: the champion's)."""
        c = self.config
        lane = lane or self.lanes[0]
        ref = self.split.challenger if self.split and lane.role == CHALLENGER else c.model
        out: dict[str, Any] = {
            "model": ref, "uri": lane.view.version.uri, "runtime": c.runtime,
            "engine": self.engine_name, "replicas": lane.backend.replicas,
            "batching": asdict(c.batching), "guard": asdict(c.guard),
            "max_audio_seconds": c.max_audio_seconds, "role": lane.role,
            "threads": c.threads}
        if lane.backend.address is not None:
            out["ray_address"] = lane.backend.address
        if self.split is not None:
            out["split"] = {
                "percent": self.split.percent, "challenger": self.split.challenger,
                "routing": "sha256 of X-Request-Id",
                "versions": {x.role: {"uri": x.view.version.uri,
                                      "serving_run": x.recorder.id if x.recorder else None}
                             for x in self.lanes}}
        return out

    def share(self, lane: Lane) -> float:
        """The share of the requests the split sends to ``lane``."""
        if self.split is None:
            return 1.0
        challenger = self.split.percent / 100
        return challenger if lane.role == CHALLENGER else 1 - challenger

    def lane_for(self, request_id: str | None) -> Lane:
        if self.split is not None and request_id is not None \
                and self.split.to_challenger(request_id):
            return self.lanes[1]
        return self.lanes[0]

    async def predict(self, wave: np.ndarray, request_id: str | None = None) -> Routed:
        if self.closing:
            raise ServerClosingError("the server is shutting down; retry on another replica")
        lane = self.lane_for(request_id)
        try:
            served = await asyncio.wait_for(lane.backend.predict(wave), self.timeout)
        except asyncio.TimeoutError:
            raise ReplicaUnavailableError(
                f"no replica of {lane.view.version.uri} answered within {self.timeout:g} s; "
                "retry later") from None
        answer = Routed(served.answer.answer, served.answer.verdict, lane)
        self._measure(lane.metrics, served)
        return answer

    def observe(self, wave: np.ndarray, answer: Answer, latency: float) -> None:
        """Metrics, drift windows and the serving run of the version that gave ``answer``."""
        lane = self._lane_of(answer)
        observe(lane.metrics, lane.drift, lane.recorder, lane.view.sample_rate, wave, answer,
                latency)

    def receiving(self) -> contextlib.AbstractContextManager[None]:
        """The replicas batch what reaches them and wait ``max_wait_ms`` for more: they do
        not see what this process is receiving."""
        return contextlib.nullcontext()

    async def enroll(self, name: str, waves: list[np.ndarray]) -> dict[str, Any]:
        raise InvalidInputError(
            "enrolling over HTTP needs one version served in this process (the embedded "
            "engine without --challenger): each replica or version would hold its own "
            "enrollments; enroll at start-up with --option enroll=DIR instead")

    def answered_by(self, answer: Answer) -> tuple[Any, str | None]:
        """The version that gave ``answer``, and its role when traffic is split."""
        lane = self._lane_of(answer)
        return lane.view.version, lane.role if self.split is not None else None

    def metrics_of(self, answer: Answer) -> VersionMetrics:
        """The metrics of the version that gave ``answer``."""
        return self._lane_of(answer).metrics

    def _lane_of(self, answer: Answer) -> Lane:
        """The lane that gave ``answer`` (the champion's for an answer that does not say)."""
        return answer.lane if isinstance(answer, Routed) and answer.lane else self.lanes[0]

    @staticmethod
    def _measure(metrics: VersionMetrics, served: Served) -> None:
        metrics.queue_seconds.observe(served.waited)
        if served.batch is not None:
            metrics.batch(served.batch)
        if served.guard_seconds is not None:
            metrics.guard_seconds.observe(served.guard_seconds)

    def close(self) -> None:
        """Stop taking requests, stop the replicas, finish the serving runs."""
        if self.closing:
            return
        self.closing = True
        try:
            for lane in self.lanes:
                try:
                    lane.backend.close()
                except Exception:
                    log.exception("stopping the replicas of %s failed",
                                  lane.view.version.uri)
        finally:
            for lane in self.lanes:
                if lane.recorder is not None:
                    lane.recorder.finish()
            if self._on_close is not None:
                self._on_close()


def _versions(config: ServingConfig, split: Split | None) -> list[tuple[str, Any]]:
    """(role, ModelVersion) of the champion and the challenger, checked to be two versions
    of one model."""
    import tympan.models

    refs = [(CHAMPION, config.model)] + ([(CHALLENGER, split.challenger)] if split else [])
    versions = [(role, tympan.models.get(ref, store=config.store)) for role, ref in refs]
    if split is not None:
        (_, champion), (_, challenger) = versions
        if challenger.model != champion.model:
            raise InvalidInputError(f"the challenger must be another version of "
                                    f"{champion.model}, got {challenger.uri}")
        if challenger.version == champion.version:
            raise InvalidInputError(f"the champion and the challenger are both "
                                    f"{champion.uri}: name two different versions")
    return versions


def embedded(config: ServingConfig, split: Split) -> Fleet:
    """A champion/challenger split on the embedded engine: one ``Replica`` per version in
    this process."""
    def backends(uris: list[tuple[str, str]]) -> list[Backend]:
        started: list[Backend] = []
        try:
            for _, uri in uris:
                started.append(LocalBackend(uri, config))
        except BaseException:
            for backend in started:
                backend.close()
            raise
        return started

    return Fleet.start(config, split, "embedded", backends, config.request_timeout)

