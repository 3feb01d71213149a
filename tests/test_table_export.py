"""GET /api/runs/export and /api/runs/groups/export: the runs table (every matching run, not
one page) and the run groups as CSV and JSON, with the same numbers as the JSON API."""

from __future__ import annotations

import csv
import io
import math

import httpx
import pytest


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    import tympan
    from server_fixtures import live_server
    from tympan.track.stores import close_stores

    store = str(tmp_path_factory.mktemp("export") / "store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TYMPAN_CAPTURE_ENV", "0")
        for encoder, seed, wer in (("gru", 1, 0.20), ("gru", 2, 0.24), ("conv", 1, 0.31),
                                   ("conv", 2, float("nan"))):
            with tympan.init(project="asr", name=f"{encoder}-{seed}", store=store,
                             config={"model": {"encoder": encoder}, "seed": seed}) as run:
                run.log({"test/wer": wer + 0.1}, step=0)
                run.log({"test/wer": wer}, step=1)
    close_stores()
    with live_server(store, auth=False) as url:
        yield url


def _get(url, path: str, **params) -> httpx.Response:
    return httpx.get(f"{url}/api/{path}", params=params, headers=url.headers)


def test_runs_export_csv_has_every_matching_run_and_the_chosen_columns(served) -> None:
    answer = _get(served, "runs/export", format="csv", sort="metric:test/wer", limit=1,
                  where="model.encoder = gru",
                  columns="config:model.encoder,metric:test/wer,metric:test/wer.max")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert 'filename="runs.csv"' in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["name"] for r in rows] == ["gru-1", "gru-2"]  # sorted, both (no paging)
    assert [float(r["test/wer"]) for r in rows] == [0.20, 0.24]
    assert float(rows[0]["test/wer.max"]) == pytest.approx(0.30)
    assert rows[0]["model.encoder"] == "gru"


def test_runs_export_json_defaults_to_every_config_key_and_metric(served) -> None:
    rows = _get(served, "runs/export", format="json").json()
    assert len(rows) == 4
    by_name = {r["name"]: r for r in rows}
    assert by_name["conv-2"]["test/wer"] == "NaN"  # JSON has no NaN: a string, as tympan export
    assert by_name["gru-1"]["seed"] == 1 and by_name["gru-1"]["model.encoder"] == "gru"


def test_groups_export_has_the_group_tables_numbers(served) -> None:
    groups = _get(served, "runs/groups", by="model.encoder", metric="test/wer").json()["groups"]
    answer = _get(served, "runs/groups/export", by="model.encoder", metric="test/wer")
    rows = {r["model.encoder"]: r for r in csv.DictReader(io.StringIO(answer.text))}
    assert set(rows) == {"gru", "conv"}
    for group in groups:
        row = rows[group["values"]["model.encoder"]]
        assert int(row["n"]) == group["n"] and int(row["size"]) == group["size"] == 2
        assert float(row["mean"]) == pytest.approx(group["mean"])
        if group["low"] is None:
            assert row["low"] == ""
        else:
            assert float(row["low"]) == pytest.approx(group["low"])
            assert math.isclose(float(row["high"]), group["high"])
    assert rows["conv"]["n"] == "1" and rows["gru"]["metric"] == "test/wer"


def test_bad_export_requests_say_what_is_wrong(served) -> None:
    answer = _get(served, "runs/export", format="xlsx")
    assert answer.status_code == 400 and "xlsx" in answer.json()["error"]["message"]
    answer = _get(served, "runs/export", columns="seed")
    assert answer.status_code == 400 and "unknown column 'seed'" in \
        answer.json()["error"]["message"]
