"""Reading runs back through a real ``tympan server`` process: ``TYMPAN_STORE=http://...``
with a token gives the same answers as the store itself, to the CLI and to the Python API,
and a project-bound token sees its project only."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.server_fixtures import live_server
from tests.test_cli import Outcome, assert_one_line_error, tympan_cli

import tympan
from tympan.errors import InvalidInputError, NotFoundError, RunNotFoundError
from tympan.records.source import open_source
from tympan.store import open_store, tokens


def _log_runs(store: str, tmp: Path) -> dict[str, str]:
    """Three runs of project asr (configs, NaN and many points, files of every kind) and one
    of project tts; returns their ids by name."""
    (tmp / "ckpt.pt").write_bytes(bytes(range(256)) * 4000)
    ids = {}
    for name, encoder, lr in (("gru-1", "gru", 1e-3), ("gru-2", "gru", 3e-4),
                              ("conv-1", "conv", 1e-3)):
        with tympan.init(project="asr", name=name, store=store, tags=["remote"],
                         config={"model": {"encoder": encoder}, "lr": lr}) as run:
            for step in range(2500):
                run.log({"loss": 1.0 / (step + 1) + lr,
                         "odd": math.nan if step % 7 == 0 else float(step)}, step=step)
            run.log({"test/wer": 0.2 if encoder == "gru" else 0.3})
            if name == "gru-1":
                run.log_artifact(tmp / "ckpt.pt")
                t = np.arange(8000) / 16000
                run.log_audio("sample", np.sin(2 * np.pi * 440 * t).astype(np.float32),
                              sample_rate=16000, caption="a tone")
                run.log_image("attention", np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
                run.log_table("errors", [["u1", 0.5]], columns=["utt", "wer"])
        ids[name] = run.id
    with tympan.init(project="tts", name="tts-1", store=store) as run:
        run.log({"mcd": 5.0})
    ids["tts-1"] = run.id
    return ids


class Served:
    url: str
    store: str
    ids: dict[str, str]
    read: str  # a read token of every project
    asr: str  # a read token of project asr


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tympan.track.stores import close_stores

    tmp = tmp_path_factory.mktemp("remote-read")
    info = Served()
    info.store = str(tmp / "store")
    info.ids = _log_runs(info.store, tmp)
    with open_store(info.store) as store, store.write() as conn:
        info.read, _ = tokens.create(conn, "read")
        info.asr, _ = tokens.create(conn, "read", project="asr")
    close_stores()
    with live_server(info.store) as url:
        info.url = url
        yield info


def both(served: Served, *args: str) -> tuple[Outcome, Outcome]:
    """The CLI's answer from the store, then through the server (a read token)."""
    local = tympan_cli("--store", served.store, *args)
    remote = tympan_cli(*args, env={"TYMPAN_STORE": served.url, "TYMPAN_TOKEN": served.read})
    assert local.code == 0, local
    return local, remote


def test_the_cli_reads_the_same_through_the_server(served: Served) -> None:
    local, remote = both(served, "runs", "--json", "--where", "model.encoder = gru",
                         "--sort", "loss.min", "--desc")
    assert remote == local
    assert [r["name"] for r in json.loads(remote.stdout)] == ["gru-1", "gru-2"]
    local, remote = both(served, "runs", "--project", "asr", "--limit", "2")
    assert remote == local and "gru-2" in remote.stdout
    for args in (("show", "gru-1", "--json"), ("show", "gru-1"), ("diff", "gru-1", "conv-1",
                                                                 "--json"),
                 ("export", "gru-1", "--format", "csv"), ("export", "gru-1", "-f", "json")):
        local, remote = both(served, *args)
        assert remote == local, args
    shown = json.loads(both(served, "show", served.ids["gru-1"][:6], "--json")[1].stdout)
    assert shown["summary"]["odd"]["nan_count"] == 358
    assert [a["path"] for a in shown["images"]] == [i["path"] for i in shown["images"]]
    assert len(shown["audio_samples"]) == 1 and shown["tables"][0]["rows"] == 1


def test_the_python_api_reads_the_same_through_the_server(
    served: Served, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TYMPAN_TOKEN", served.read)
    local = tympan.load_run("gru-1", store=served.store)
    remote = tympan.load_run("gru-1", store=served.url)
    assert repr(remote) == repr(local)  # every field, config and summary (NaN != NaN)
    assert remote.store is None and local.store is not None
    for key in ("loss", "odd"):
        a, b = local.history(key), remote.history(key)
        assert len(b) == 2500
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.values, b.values)  # NaN where NaN
        np.testing.assert_array_equal(a.times, b.times)
    assert remote.metric_keys() == local.metric_keys()
    assert remote.environment() == local.environment()
    assert remote.read_artifact("ckpt.pt") == local.read_artifact("ckpt.pt")
    samples, rate, caption = remote.read_audio("sample")
    assert (rate, caption, samples.shape) == (16000, "a tone", (8000,))
    np.testing.assert_allclose(samples, local.read_audio("sample")[0])
    assert remote.read_image("attention") == local.read_image("attention")
    assert remote.read_table("errors").rows == [["u1", 0.5]]
    with pytest.raises(InvalidInputError, match="has no artifact 'nope'.*ckpt.pt"):
        remote.read_artifact("nope")

    query = {"where": ["test/wer > 0.1", "lr <= 0.001 and tags has remote"],
             "sort": "test/wer", "descending": True}
    found = tympan.find_runs(served.url, **query)
    assert repr(found) == repr(tympan.find_runs(served.store, **query))
    assert found[0].name == "conv-1" and {r.name for r in found[1:]} == {"gru-1", "gru-2"}
    assert [r.name for r in tympan.find_runs(served.url, project="asr", limit=1,
                                             sort="name")] == ["conv-1"]
    with pytest.raises(InvalidInputError, match="no project 'nope'.*asr, tts"):
        tympan.find_runs(served.url, project="nope")
    with pytest.raises(InvalidInputError, match="lossy"):
        tympan.find_runs(served.url, sort="lossy")  # names the keys there are
    with pytest.raises(RunNotFoundError, match="no run 'missing'"):
        tympan.load_run("missing", store=served.url)


def test_a_project_token_reads_its_project_only(served: Served) -> None:
    source = open_source(served.url)  # TYMPAN_TOKEN unset: a one-line hint to set it
    with pytest.raises(tympan.TympanError, match="answered 401.*set TYMPAN_TOKEN"):
        source.run("gru-1")
    source.close()
    from tympan.records.remote import HttpSource

    asr = HttpSource(served.url, served.asr)
    try:
        assert {r.project for r in asr.find_runs(tympan.records.query.RunQuery())} == {"asr"}
        tts_id = served.ids["tts-1"]
        for ref in (tts_id, "tts-1", tts_id[:6]):
            with pytest.raises(RunNotFoundError) as missing:
                asr.run(ref)
            assert "tts" not in str(missing.value).replace(ref, "")
        with pytest.raises(NotFoundError, match="no run with id"):
            asr.history(tts_id, "mcd")
        gru = asr.run("gru-1")
        ckpt = gru.artifacts()[0].sha256
        with pytest.raises(NotFoundError):  # a file of its own runs, asked of another run
            asr.read_blob(served.ids["gru-2"], ckpt)
        with pytest.raises(NotFoundError, match="no project 'tts'"):
            asr.find_runs(tympan.records.query.RunQuery.from_options(project="tts"))
    finally:
        asr.close()
    result = tympan_cli("show", "tts-1", env={"TYMPAN_STORE": served.url,
                                             "TYMPAN_TOKEN": served.asr})
    assert_one_line_error(result, "no run 'tts-1' in project 'asr'")
