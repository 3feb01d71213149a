"""ONNX export checked for parity, and `tympan serve --runtime onnx`: GRU and transformer
encoders, the two that the two exporters each fail on (see registry/export.py)."""

from __future__ import annotations

import json

import httpx
import pytest
from tests.registry_fixtures import REPO, asr_run
from tests.serving_fixtures import (
    guarded_model,
    live_serve,
    one_thread,
    serving_corpus,
    split_waves,
)

import tympan
from tympan.cli.app import main
from tympan.serve.audio import encode_wav


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    corpus = serving_corpus(tmp_path_factory)
    where = str(tmp_path_factory.mktemp("onnx-store"))
    guarded_model(where, corpus, name="asr-gru", encoder="gru")
    run = asr_run(where, corpus, encoder="transformer", project="asr-ctc")
    tympan.models.register(run.id, "asr-tf", recipe=str(REPO / "recipes" / "asr_ctc"),
                           store=where)
    return {"store": where, "corpus": corpus}


def _export(store, ref, *args, capsys):
    code = main(["--store", store, "model", "export", ref, "--format", "onnx", "--json", *args])
    captured = capsys.readouterr()
    return code, captured


def test_gru_exports_and_records_parity_on_the_card(store, capsys):
    code, out = _export(store["store"], "models:/asr-gru/1", capsys=capsys)
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["exporter"] == "torchscript" and report["fallback_from"] is None
    assert report["max_abs_error"] <= 1e-3 and report["agreement"] == 1.0
    assert report["guard_layers"] and report["outputs"] == 1
    assert report["eager_ms"] > 0 and report["onnxruntime_ms"] > 0
    version = tympan.models.get("models:/asr-gru/1", store=store["store"])
    recorded = next(r for r in version.reports if (r["kind"], r["name"]) == ("export", "onnx"))
    assert recorded["data"]["run"] == report["run"]
    assert recorded["data"]["exporter"] == "torchscript"
    from tympan.registry.card import card, card_markdown

    markdown = card_markdown(card("models:/asr-gru/1", store=store["store"]))
    assert "export onnx: exporter torchscript" in markdown and "max_abs_error" in markdown


def test_transformer_falls_back_to_dynamo_and_a_failed_parity_check_is_an_error(store, capfd,
                                                                                 caplog):
    # The TorchScript tracer bakes the batch size into the attention: the check catches it.
    # (capfd: onnxruntime's own log writes to the process's stderr, past sys.stderr.)
    code, out = _export(store["store"], "models:/asr-tf/1", "--exporter", "torchscript",
                        capsys=capfd)
    assert code == 1
    assert out.err.startswith("error: ") and "no exporter gives an ONNX graph" in out.err
    assert "torchscript:" in out.err
    assert tympan.models.get("models:/asr-tf/1", store=store["store"]).reports == []
    with caplog.at_level("WARNING"):
        code, out = _export(store["store"], "models:/asr-tf/1", capsys=capfd)
    assert code == 0, out.err
    # the failed attempt's error is in the report, not also in red from onnxruntime's log;
    # and no log line per torchvision op the dynamo exporter could not register
    assert "[E:onnxruntime" not in out.err
    assert not [r for r in caplog.records if "torchvision" in r.getMessage()]
    report = json.loads(out.out)
    assert report["exporter"] == "dynamo"
    assert report["fallback_from"].startswith("torchscript (")
    assert report["max_abs_error"] <= 1e-3 and report["agreement"] == 1.0
    assert report["guard_layers"] == ""  # no profile: exported without guard outputs


def test_serve_runtime_onnx_answers_as_torch_does_with_the_same_guard(store):
    clips = [w for _, w in split_waves(store["corpus"], "test")[:4]]
    loaded = tympan.models.load("models:/asr-gru/1", store=store["store"])
    expected = loaded.predict(clips)
    from tympan.serve.engine import Engine

    eager = Engine.load("models:/asr-gru/1", store=store["store"], threshold=0.05)
    try:
        assert eager.padding == "batch"  # packed GRU: padding never reaches valid frames
        batched = eager.answer(clips)
        eager_verdicts = [a.verdict for a in batched]
        alone = [eager.answer([c])[0] for c in clips]
        assert [a.answer for a in alone] == [a.answer for a in batched]
        assert [a.verdict.p_value for a in alone] == pytest.approx(
            [v.p_value for v in eager_verdicts], abs=1e-9)
    finally:
        eager.close()
    with live_serve(store["store"], "models:/asr-gru/1", "--runtime", "onnx", "--no-record",
                    "--threshold", "0.05") as url:
        model = httpx.get(f"{url}/v1/model").json()
        assert model["runtime"] == "onnx"
        for clip, text, verdict in zip(clips, expected, eager_verdicts, strict=True):
            body = httpx.post(f"{url}/v1/predict", content=encode_wav(clip, 16000),
                              timeout=60).json()
            assert body["answer"] == {"transcript": text}
            assert body["guard"]["p_value"] == pytest.approx(verdict.p_value, abs=1e-6)
            assert body["guard"]["flagged"] == verdict.flagged


def test_serve_runtime_onnx_without_an_export_says_what_to_run(tmp_path, capsys):
    from tests.registry_fixtures import asr_run

    where = str(tmp_path)
    run = asr_run(where, tmp_path, project="asr-ctc")
    tympan.models.register(run.id, "plain", recipe=str(REPO / "recipes" / "asr_ctc"),
                           store=where)
    code = main(["--store", where, "serve", "models:/plain/1", "--runtime", "onnx",
                 "--guard", "off", "--no-record", "--port", "0"])
    assert code == 1
    assert "tympan model export models:/plain/1" in capsys.readouterr().err
