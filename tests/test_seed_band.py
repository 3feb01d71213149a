"""records/bands.py: a seed group's curve is the group table's statistic at every step, and
GET /api/metrics/band serves it (real SQLite stores, the real app over HTTP)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

import tympan
from tympan.errors import InvalidInputError
from tympan.records.bands import seed_band
from tympan.records.groups import group_runs, mean_interval
from tympan.records.query import RunFilter
from tympan.records.record import run_by_id
from tympan.track.stores import close_stores, shared_store


def _seeds(store: str, steps: dict[int, int]) -> list[str]:
    """One run per seed, logging loss = 1/(step+1) + seed/10 at every step up to steps[seed]."""
    ids = []
    for seed, last in steps.items():
        with tympan.init(project="p", name=f"s{seed}", config={"enc": "gru", "seed": seed},
                         store=store) as run:
            for step in range(last):
                run.log({"loss": 1 / (step + 1) + seed / 10}, step=step)
            ids.append(run.id)
    close_stores()
    return ids


def test_the_band_is_the_group_tables_interval_at_every_step(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    ids = _seeds(store, {1: 20, 2: 20, 3: 20, 4: 12})  # seed 4 stopped early
    records = [run_by_id(shared_store(store), i) for i in ids]
    band = seed_band(records, "loss")
    assert band.x == [float(s) for s in range(20)] and not band.bucketed
    for step in (0, 11, 12, 19):
        values = [1 / (step + 1) + seed / 10 for seed in (1, 2, 3, 4) if step < (12 if seed == 4
                                                                               else 20)]
        n, mean, _, low, high = mean_interval(values)
        assert (band.n[step], band.mean[step], band.low[step], band.high[step]) == (
            n, pytest.approx(mean, rel=1e-12), pytest.approx(low, rel=1e-12),
            pytest.approx(high, rel=1e-12))
    assert band.n[11] == 4 and band.n[12] == 3
    assert band.low[0] < band.mean[0] < band.high[0]


def test_at_the_last_step_the_band_says_what_the_group_table_says(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    records = [run_by_id(shared_store(store), i) for i in _seeds(store, {1: 9, 2: 9, 3: 9})]
    band = seed_band(records, "loss")
    (group,) = group_runs(shared_store(store), RunFilter(project="p"), ["enc"], "loss").groups
    assert group.n == band.n[-1] == 3
    # the same function of the same values (the table's sums are SQL's: equal to the last bits)
    assert (band.mean[-1], band.low[-1], band.high[-1]) == pytest.approx(
        (group.mean, group.low, group.high), rel=1e-12)


def test_long_series_are_averaged_per_run_over_spans_of_steps(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    ids = _seeds(store, {1: 3000, 2: 3000})
    records = [run_by_id(shared_store(store), i) for i in ids]
    band = seed_band(records, "loss", points=100)
    assert band.bucketed and len(band.x) == 100 and band.n == [2] * 100
    assert band.x[0] == pytest.approx(np.mean(range(30)))  # 30 steps a span
    first = [np.mean([1 / (s + 1) + seed / 10 for s in range(30)]) for seed in (1, 2)]
    assert band.mean[0] == pytest.approx(np.mean(first), rel=1e-12)
    assert band.low[0] == pytest.approx(mean_interval(first)[3], rel=1e-12)


def test_a_metric_no_run_logged_has_no_curve_and_bad_settings_are_refused(tmp_path: Path
                                                                          ) -> None:
    store = str(tmp_path / "store")
    records = [run_by_id(shared_store(store), i) for i in _seeds(store, {1: 3})]
    assert seed_band(records, "wer").runs == [] and seed_band(records, "wer").x == []
    with pytest.raises(InvalidInputError, match="confidence"):
        seed_band(records, "loss", confidence=1.5)
    with pytest.raises(InvalidInputError, match="points"):
        seed_band(records, "loss", points=1)


@pytest.mark.slow
def test_the_band_route_serves_it_and_refuses_bad_input(tmp_path: Path) -> None:
    from server_fixtures import live_server

    store = str(tmp_path / "store")
    ids = _seeds(store, {1: 5, 2: 5})
    with live_server(store, auth=False) as url:
        got = httpx.get(f"{url}/api/metrics/band", params={"runs": ",".join(ids), "key": "loss"},
                        headers=url.headers)
        assert got.status_code == 200
        body = got.json()
        assert body["runs"] == ids and body["n"] == [2] * 5 and body["confidence"] == 0.95
        assert body["mean"][0] == pytest.approx(1 + 0.15)
        missing = httpx.get(f"{url}/api/metrics/band", params={"runs": ids[0], "key": "wer"},
                            headers=url.headers)
        assert missing.status_code == 200 and missing.json()["runs"] == []
        none = httpx.get(f"{url}/api/metrics/band", params={"runs": "", "key": "loss"},
                         headers=url.headers)
        assert none.status_code == 400 and "runs=" in none.json()["error"]["message"]
        unknown = httpx.get(f"{url}/api/metrics/band", params={"runs": "nope", "key": "loss"},
                            headers=url.headers)
        assert unknown.status_code == 404
