"""The CTC ASR recipe: a tiny run through the real entry point, and its config overrides."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from recipes.asr_ctc.train import Config, ConfigError, load_config, main
from tests.serving_fixtures import assert_batch_features_match

import tympan

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_is_recorded(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # The smallest corpus (one speaker per split) and model; checks wiring, not accuracy.
    overrides = [f"store={store}", f"corpus_dir={tmp_path / 'corpus'}", "voices=3",
                 "per_speaker=3", "epochs=1", "hidden=32", "layers=1", "batch_size=4",
                 "warmup_steps=1", "n_boot=50", "encoder=gru"]
    done = subprocess.run([sys.executable, "-m", "recipes.asr_ctc.train", *overrides],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (record,) = tympan.find_runs(store=str(store), project="asr-ctc")
    run_id = record.id
    assert record.config["encoder"] == "gru"
    assert record.config["corpus_dir"] == str(tmp_path / "corpus")  # resolved, not null
    assert len(record.history("train/loss").values) == 1  # 3 utterances, batches of 4
    assert len(record.history("lr").values) == 1
    for key in ("valid/wer", "valid/wer_low", "valid/wer_high", "test/cer"):
        assert key in record.summary
    low, wer, high = (record.summary[f"valid/wer{s}"].last for s in ("_low", "", "_high"))
    assert low <= wer <= high
    samples = record.audio_samples()
    assert samples and all(s.caption.startswith("ref: ") and " | hyp: " in s.caption
                           for s in samples)
    assert [a.path for a in record.artifacts()].count("model.pt") == 1
    checkpoint = torch.load(io.BytesIO(record.read_artifact("model.pt")))
    assert checkpoint["run_id"] == run_id
    per_utterance = json.loads(record.read_artifact("test/utterances.json"))
    assert len(per_utterance["ids"]) == len(per_utterance["wer"]["errors"]) > 0
    wer = sum(per_utterance["wer"]["errors"]) / sum(per_utterance["wer"]["counts"])
    assert wer == pytest.approx(record.summary["test/wer"].last)
    assert checkpoint["config"] == record.config
    assert "out.weight" in checkpoint["model"]


def test_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(overrides=["encoder=transformer", "lr=1e-3", "spec_augment=false",
                                 "store=null", "epochs=7"])
    assert (cfg.encoder, cfg.lr, cfg.spec_augment, cfg.store, cfg.epochs) == (
        "transformer", 1e-3, False, None, 7)
    assert load_config() == Config()  # configs/base.yaml holds exactly the defaults


@pytest.mark.parametrize(("override", "message"), [
    ("encodr=gru", "unknown config key 'encodr'"),
    ("epochs=two", "epochs='two' is not an integer"),
    ("encoder=lstm", "encoder='lstm' is not one of conv | gru | transformer"),
    ("spec_augment=maybe", "spec_augment='maybe' is not true or false"),
    ("epochs", "override 'epochs' is not key=value"),
    ("epochs=0", "epochs must be 1 or more"),
])
def test_bad_override_is_a_clear_error(override: str, message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        load_config(overrides=[override])
    with pytest.raises(SystemExit) as exit_info:
        main([override])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The transformer packs a padded batch's real frames at inference (PackedEncoderLayer): each
# clip's answer must be the stock layer's for that clip alone, and a probe's hooks must still
# pool each clip by its length.

FRAMES = (9, 40, 77, 128, 161)  # several lengths, one of them odd, the longest sets the pad


def _transformer_and_stock() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A recipe transformer (eval) and the same weights in stock ``nn.TransformerEncoder``."""
    import copy

    from recipes.asr_ctc.train import CTCModel, PackedEncoderLayer

    torch.manual_seed(0)
    cfg = Config(encoder="transformer")
    model = CTCModel(cfg, dims=cfg.n_mels).eval()
    assert all(isinstance(m, PackedEncoderLayer) for m in model.encoder.layers)
    stock = copy.deepcopy(model)
    layer = torch.nn.TransformerEncoderLayer(cfg.hidden, 4, 2 * cfg.hidden, cfg.dropout,
                                             batch_first=True, norm_first=True)
    stock.encoder = torch.nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
    stock.encoder.load_state_dict(model.encoder.state_dict())
    return model, stock.eval()


def _clips() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(n, Config().n_mels, generator=gen) for n in FRAMES]


@pytest.mark.parametrize("order", [(0, 1, 2, 3, 4), (4, 2, 0, 3, 1), (3, 0)])
def test_packed_transformer_gives_each_clip_its_stock_answer_alone(order) -> None:
    from tympan.audio.features import pad_features

    model, stock = _transformer_and_stock()
    clips = [_clips()[i] for i in order]
    x, lengths = pad_features(clips)
    padded_layer0 = []
    model.encoder.layers[0].register_forward_hook(lambda _m, _i, out: padded_layer0.append(out))
    with torch.inference_mode():
        batched = model(x, lengths)
        for row, clip in enumerate(clips):
            alone = stock(clip[None], torch.tensor([len(clip)]))[0]
            n = len(alone)
            torch.testing.assert_close(batched[row, :n], alone, rtol=1e-5, atol=1e-5)
    # The packed path ran: it leaves padding at zero, where the stock layer computes values.
    frames = int(model.out_lengths(torch.tensor(x.shape[1])))
    valid = torch.arange(frames)[None] < model.out_lengths(lengths)[:, None]
    out = padded_layer0[-1]
    assert out.shape[:2] == valid.shape and out.abs().sum(-1)[valid].min() > 0
    if not valid.all():
        assert out[~valid].abs().max() == 0


def test_probe_hooks_pool_each_packed_clip_as_the_stock_model_alone() -> None:
    from tympan.audio.features import pad_features
    from tympan.probe.features import FeatureCapture

    model, stock = _transformer_and_stock()
    clips = _clips()
    with torch.inference_mode(), FeatureCapture(model, padding="batch") as capture:
        assert "encoder.layers.1" in capture.names
        batched = capture.capture(pad_features(clips))
    with torch.inference_mode(), FeatureCapture(stock, padding="batch") as capture:
        for row, clip in enumerate(clips):
            alone = capture.capture(pad_features([clip]))
            for name, values in alone.items():
                torch.testing.assert_close(torch.from_numpy(batched[name][row]),
                                           torch.from_numpy(values[0]), rtol=1e-4, atol=1e-5)


def test_a_hook_inside_a_layer_sees_the_stock_calls_and_answers_stay_the_same() -> None:
    from tympan.audio.features import pad_features

    model, stock = _transformer_and_stock()
    x, lengths = pad_features(_clips())
    seen = []
    model.encoder.layers[1].self_attn.register_forward_hook(
        lambda _m, _i, out: seen.append(out[0].shape))
    with torch.inference_mode():
        got, expected = model(x, lengths), stock(x, lengths)
    for row, n in enumerate(model.out_lengths(lengths).tolist()):  # padding may differ
        torch.testing.assert_close(got[row, :n], expected[row, :n], rtol=1e-5, atol=1e-5)
    frames = int(model.out_lengths(torch.tensor(x.shape[1])))
    assert seen == [torch.Size([len(FRAMES), frames, Config().hidden])]


def test_training_and_export_tracing_take_the_stock_padded_path() -> None:
    from tympan.audio.features import pad_features

    model, stock = _transformer_and_stock()
    x, lengths = pad_features(_clips())
    model.train(), stock.train()
    torch.manual_seed(3)
    trained = model(x, lengths)
    torch.manual_seed(3)  # the same dropout draws: the same computation as the stock layer
    torch.testing.assert_close(trained, stock(x, lengths))
    model.eval(), stock.eval()
    with warnings.catch_warnings():  # the TorchScript tracer, as the ONNX exporter uses it
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (x, lengths), check_trace=False)
    assert "index_copy" not in str(traced.inlined_graph)  # no packing baked into a graph
    with torch.inference_mode():
        torch.testing.assert_close(traced(x, lengths), stock(x, lengths), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("front_end", ["logmel", "mfcc"])
@pytest.mark.parametrize("lengths", [(16000, 28800, 161, 12345), (20000,), (400, 401)])
def test_a_batchs_features_in_one_pass_equal_each_clips_alone(front_end: str,
                                                              lengths: tuple[int, ...]) -> None:
    from recipes.asr_ctc.train import batch_features, features

    assert_batch_features_match(batch_features, features, Config(front_end=front_end), lengths)
