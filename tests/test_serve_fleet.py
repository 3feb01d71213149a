"""The fleet's own rules, with replicas that are slow or lost on purpose: no request waits
past the request timeout, a lost replica is a 503 with the reason, and the split's routing is
a pure function of the request id."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from tympan.errors import InvalidInputError
from tympan.serve.batching import BatchStats
from tympan.serve.config import ServingConfig
from tympan.serve.engine import Answer
from tympan.serve.fleet import (
    Fleet,
    Lane,
    ReplicaUnavailableError,
    Split,
    VersionView,
    challenger_share,
)
from tympan.serve.replica import Served


class SlowReplicas:
    """Replicas that answer after ``seconds``, or fail as a lost replica would."""

    replicas = 1
    address = None
    alive = True

    def __init__(self, seconds: float, lost: bool = False) -> None:
        self.seconds, self.lost, self.closed = seconds, lost, False

    def describe(self) -> dict:
        return {"sample_rate": 16000, "runtime": "torch", "guard": None}

    async def predict(self, wave: np.ndarray) -> Served:
        await asyncio.sleep(self.seconds)
        if self.lost:
            raise ReplicaUnavailableError("the replicas that took this request died 3 times")
        batch = BatchStats(1, len(wave) / 16000, [], self.seconds)
        return Served(Answer({"n": len(wave)}, None), 0.0, batch, None, "test")

    def close(self) -> None:
        self.closed = True


def _fleet(champion: SlowReplicas, challenger: SlowReplicas | None = None,
           timeout: float = 1.0) -> Fleet:
    config = ServingConfig(model="models:/m@champion", record=False,
                           challenger="models:/m/2" if challenger else None,
                           split=50.0 if challenger else None)
    lanes = []
    for role, number, backend in (("champion", 1, champion), ("challenger", 2, challenger)):
        if backend is not None:
            version = SimpleNamespace(model="m", version=number, uri=f"models:/m/{number}")
            lanes.append(Lane(role, VersionView(version, backend.describe()), backend, None,
                              None, None))
    return Fleet(config, lanes, Split.of(config), "test", timeout)


def test_a_request_never_waits_past_the_timeout():
    fleet = _fleet(SlowReplicas(5.0), timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ReplicaUnavailableError, match="within 0.2 s"):
        asyncio.run(fleet.predict(np.zeros(160, np.float32)))
    assert time.monotonic() - started < 2


def test_a_lost_replica_is_an_error_and_closing_stops_every_version():
    champion, challenger = SlowReplicas(0.0, lost=True), SlowReplicas(0.0)
    fleet = _fleet(champion, challenger)
    rid = next(f"r{k}" for k in range(100) if challenger_share(f"r{k}") >= 0.5)
    with pytest.raises(ReplicaUnavailableError, match="died"):
        asyncio.run(fleet.predict(np.zeros(160, np.float32), rid))
    other = next(f"r{k}" for k in range(100) if challenger_share(f"r{k}") < 0.5)
    answer = asyncio.run(fleet.predict(np.zeros(320, np.float32), other))
    assert fleet.answered_by(answer)[0].version == 2 and answer.answer == {"n": 320}
    assert fleet.answered_by(answer)[1] == "challenger"
    fleet.close()
    assert champion.closed and challenger.closed and not fleet.ready


def test_the_split_is_a_pure_function_of_the_request_id():
    split = Split("models:/m/2", 10.0)
    ids = [f"client-{k}" for k in range(5000)]
    first = [split.to_challenger(i) for i in ids]
    assert first == [split.to_challenger(i) for i in ids]
    assert 0.08 < sum(first) / len(first) < 0.12


@pytest.mark.parametrize(("changes", "words"), [
    ({"split": 10.0}, "go together"),
    ({"challenger": "models:/m/2"}, "go together"),
    ({"challenger": "models:/m/2", "split": -5.0}, "strictly between 0 and 100"),
    ({"challenger": "models:/m/2", "split": 100.0}, "strictly between 0 and 100"),
    ({"replicas": 0, "engine": "ray"}, "at least 1"),
    ({"address": "auto"}, "for --engine ray"),
    ({"request_timeout": 0.0}, "timeout must be > 0"),
])
def test_bad_settings_are_refused_with_the_reason(changes, words):
    with pytest.raises(InvalidInputError, match=words):
        ServingConfig(model="models:/m@champion", **changes)


def test_metrics_are_labelled_by_version_and_role():
    """Each version of a split has its own series: requests, batches, and its share."""
    from prometheus_client.parser import text_string_to_metric_families

    fleet = _fleet(SlowReplicas(0.0), SlowReplicas(0.0))
    ids = [f"r{k}" for k in range(100)]
    sent = [rid for rid in ids if challenger_share(rid) < 0.5][:3] + \
        [rid for rid in ids if challenger_share(rid) >= 0.5][:5]
    for rid in sent:
        answer = asyncio.run(fleet.predict(np.zeros(160, np.float32), rid))
        fleet.metrics_of(answer).answered(200, 0.01)
    data, _ = fleet.metrics.render()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(data.decode())
               for s in family.samples}

    def value(name: str, version: str, role: str, **more: str) -> float:
        labels = {"model": "m", "version": version, "role": role, **more}
        return samples[(name, tuple(sorted(labels.items())))]

    for version, role, count in (("1", "champion", 5), ("2", "challenger", 3)):
        assert value("tympan_serve_requests_total", version, role, status="200") == count
        assert value("tympan_serve_request_seconds_count", version, role) == count
        assert value("tympan_serve_batch_size_count", version, role) == count
        assert value("tympan_serve_traffic_share", version, role) == 0.5
        assert value("tympan_serve_model_info", version, role, runtime="torch") == 1
    fleet.close()
