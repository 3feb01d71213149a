"""An input's features, scores and p-values do not depend on what it is batched with
(issue 12, item 2): the recipe models on real speech of mixed lengths, scored alone and in
padded batches, through ``Profile.score`` and through the waveform ``Scorer``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from speech import speech
from tympan.audio.features import pad_features
from tympan.errors import InvalidInputError
from tympan.probe import OutputHead, Scorer
from tympan.probe.features import OUTPUT_KEY, collect
from tympan.probe.profile import Profile, fit


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Many single-input forward passes: torch's thread pool only adds contention here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TEXTS = ("four one nine two", "seven seven three", "zero eight five six one", "two nine four",
         "one three three eight", "six zero two")
VOICES = (("m1", 50, 150), ("f2", 60, 175), ("m3", 40, 200))


@pytest.fixture(scope="module")
def waves() -> list[np.ndarray]:
    return [speech(t, "en", variant=v, pitch=p, rate=r)[0] for t in TEXTS for v, p, r in VOICES]


@pytest.fixture(scope="module")
def crops(waves) -> list[np.ndarray]:
    """160 waveforms of 0.3 to 1.2 s cut from the utterances: every length differs."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(160):
        w = waves[int(rng.integers(len(waves)))]
        n = int(rng.integers(4800, min(len(w), 19200)))
        start = int(rng.integers(0, len(w) - n + 1))
        out.append(w[start:start + n].copy())
    return out


def _asr(encoder: str) -> tuple[nn.Module, object]:
    from recipes.asr_ctc.train import Config, CTCModel, features

    torch.manual_seed(0)
    cfg = Config(encoder=encoder, hidden=32, layers=2)
    return CTCModel(cfg, dims=40).eval(), lambda w: features(cfg, w)


def _speaker() -> tuple[nn.Module, object]:
    from recipes.speaker_id.train import Config, XVector, features

    torch.manual_seed(0)
    cfg = Config(channels=32, embedding=16)
    return XVector(cfg, dims=40, n_speakers=8).eval(), lambda w: features(cfg, w)


MODELS = {"asr-conv": lambda: _asr("conv"), "asr-gru": lambda: _asr("gru"),
          "asr-transformer": lambda: _asr("transformer"), "speaker-xvector": _speaker}
HEADS = {"speaker-xvector": OutputHead("head")}


def _batches(feats: list[torch.Tensor], size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [pad_features(feats[i:i + size]) for i in range(0, len(feats), size)]


@pytest.mark.parametrize("name", list(MODELS))
def test_an_input_scores_the_same_alone_and_in_any_padded_batch(name, crops) -> None:
    model, featurize = MODELS[name]()
    head = HEADS.get(name, OutputHead("out", blank=0))
    feats = [featurize(w) for w in crops]
    profile = fit(model, _batches(feats[:120], 32), head=head)
    test = feats[120:]
    # in padded batches of 13 (mixed lengths), in one batch of all 40 in another order ...
    batched = profile.score(model, _batches(test, 13), alpha=0.05)
    order = np.random.default_rng(1).permutation(len(test))
    shuffled = profile.score(model, [pad_features([test[i] for i in order])], alpha=0.05)
    for i in range(0, len(test), 4):  # ... and alone
        alone = profile.score(model, [pad_features([test[i]])], alpha=0.05)
        j = int(np.flatnonzero(order == i)[0])
        for other, k in ((batched, i), (shuffled, j)):
            np.testing.assert_allclose(alone.scores[0], other.scores[k], rtol=1e-5)
            # z = (distance - mean) / std: near 0 its error is absolute (1e-4 of a std)
            np.testing.assert_allclose(alone.profile[0], other.profile[k], rtol=1e-5,
                                       atol=1e-4)
            np.testing.assert_allclose(alone.outputs[0], other.outputs[k], rtol=1e-5)
            assert alone.p_value[0] == other.p_value[k]
            np.testing.assert_array_equal(alone.p_values[0], other.p_values[k])
            assert alone.entry[0] == other.entry[k]


@pytest.mark.parametrize("encoder", ["conv", "gru", "transformer"])
def test_the_recipe_encoders_mask_their_padding(encoder, crops) -> None:
    """Every ASR encoder masks its padding (the conv blocks zero the padded frames before
    each convolution), so one padded batch run as given (``padding="batch"``, what the
    serving batcher does) gives each input the outputs and features it gets alone."""
    model, featurize = _asr(encoder)
    feats = [featurize(w) for w in crops[:9]]
    assert len({len(f) for f in feats}) == 9  # every length differs, odd and even
    head = OutputHead("out", blank=0)
    x, lengths = pad_features(feats)
    if x.shape[1] % 2 == 0:  # padded to an odd length: where a ratio of frames miscounts
        x = nn.functional.pad(x, (0, 0, 0, 1))
    with torch.no_grad():
        padded_out = model(x, lengths)
        for i, f in enumerate(feats):
            alone = model(f[None], lengths[i:i + 1])[0]
            torch.testing.assert_close(padded_out[i, :len(alone)], alone, rtol=1e-5, atol=1e-5)
    _, padded = collect(model, [(x, lengths)], head=head, padding="batch")
    for i, f in enumerate(feats):
        _, alone = collect(model, [pad_features([f])], head=head, padding="batch")
        for name, values in alone.items():
            np.testing.assert_allclose(padded[name][i], values[0], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{encoder} {name} input {i}")


def test_valid_frames_count_a_strided_layer_exactly() -> None:
    """A stride-2 layer makes ceil(n / 2) frames of an n-frame input alone; in a batch padded
    to an odd length the ratio rule would count one more (50 of 101 -> 26, alone 25)."""
    from tympan.probe.layers import valid_frames

    lengths = torch.tensor([50, 51, 101, 1])
    assert valid_frames(lengths, 101, 51).tolist() == [25, 26, 51, 1]
    assert valid_frames(lengths, 101, 101).tolist() == [50, 51, 101, 1]
    assert valid_frames(lengths, 101, 1).tolist() == [1, 1, 1, 1]  # a pooled output
    # a layer that is no whole stride of the input keeps the ratio's frames
    assert valid_frames(torch.tensor([50]), 100, 70).tolist() == [35]


class ConvProj(nn.Module):
    """A Conv1d (channels-first output) then a Linear (channels-last); ``in_place``: the
    conv's output is changed in place (``+= 1``) after its module returns it."""

    def __init__(self, in_place: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(6, 5, 3, padding=1)
        self.proj = nn.Linear(5, 7)
        self.in_place = in_place

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2))
        if self.in_place:
            h += 1.0
        return self.proj(h.transpose(1, 2))


def test_pooling_is_each_channels_mean_and_std_over_the_valid_frames() -> None:
    """The compiled pooling gives, per input, each channel's mean and standard deviation
    (float64) over its valid frames only, for a channels-first output (a Conv1d's, read as
    (batch, channels, time)) and a channels-last one (a Linear's)."""
    torch.manual_seed(0)
    model = ConvProj()
    x, lengths = 3 + torch.randn(4, 23, 6), torch.tensor([23, 9, 1, 17])
    seen: dict[str, torch.Tensor] = {}
    handles = [model.conv.register_forward_hook(lambda _m, _i, o: seen.__setitem__("conv", o)),
               model.proj.register_forward_hook(lambda _m, _i, o: seen.__setitem__("proj", o))]
    _, feats = collect(model, [(x, lengths)], ["conv", "proj"], padding="batch")
    for handle in handles:
        handle.remove()
    for name, frames in (("conv", seen["conv"].transpose(1, 2)), ("proj", seen["proj"])):
        for i, n in enumerate(lengths.tolist()):
            valid = frames[i, :n].double().numpy()
            expected = np.concatenate([valid.mean(0), valid.std(0)])
            np.testing.assert_allclose(feats[name][i], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rows", [1, 2])
def test_the_users_own_model_calls_between_passes_are_none_of_the_captures(rows) -> None:
    """The taps act only in the capture's own passes. The model called directly while the
    capture is attached (the user's own batch of 4) used to be taken as part of the last
    pass: after a lone input's pass its outputs were kept until the next pass, which pooled
    them as its own and refused them as not batch-first; after a batch's pass the call itself
    was refused so."""
    from tympan.probe.features import FeatureCapture
    torch.manual_seed(0)
    model = ConvProj().eval()
    with FeatureCapture(model, ["conv", "proj"], padding="batch") as capture, torch.no_grad():
        x = torch.randn(rows, 9, 6)
        _, first = capture.forward((x, torch.tensor([9] * rows)))
        for _ in range(3):
            model(torch.randn(4, 12, 6), torch.tensor([12] * 4))
        assert capture._pending == []
        _, again = capture.forward((x, torch.tensor([9] * rows)))
    for name in ("conv", "proj"):
        np.testing.assert_array_equal(again[name], first[name])


@pytest.mark.parametrize("in_place", [False, True])
def test_a_lone_inputs_outputs_pooled_after_the_pass_are_what_each_module_made(in_place) -> None:
    """A lone input's watched outputs are kept to the end of the forward pass and pooled then
    (fewer cold calls for the serving guard). An output a later operation changes in place
    (here ``h += 1``, or a ReLU(inplace=True)) must still be pooled as its module made it: the
    pass is run again pooling in the hooks, and every later pass pools there too."""
    from tympan.probe.features import FeatureCapture
    torch.manual_seed(0)
    model = ConvProj(in_place).eval()
    made: dict[str, torch.Tensor] = {}
    watch = model.conv.register_forward_hook(lambda _m, _i, o: made.__setitem__("conv",
                                                                             o.clone()))
    with FeatureCapture(model, ["conv", "proj"], padding="batch") as capture:
        for n in (11, 7):  # the second pass: after any switch to pooling in the hooks
            x = torch.randn(1, n, 6)
            _, feats = capture.forward((x, torch.tensor([n])))
            frames = made["conv"][0].T.double().numpy()
            np.testing.assert_allclose(feats["conv"][0],
                                       np.concatenate([frames.mean(0), frames.std(0)]),
                                       rtol=1e-12, atol=1e-12)
        assert capture._defer is not in_place  # kept to the end unless that reads wrong
    watch.remove()


class Layouts(nn.Module):
    """Outputs in every layout a lone request's kept outputs come in: channels first
    (a Conv1d), channels last (a Linear), a view read in neither order (``Rows``: every other
    row of the Linear's output turned over), and an integer tensor (``Steps``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(6, 5, 3, padding=1)
        self.proj = nn.Linear(5, 7)
        self.rows = Rows()
        self.steps = Steps()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.conv(x.transpose(1, 2)).transpose(1, 2))
        self.steps(h)
        return self.rows(h)


class Rows(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.transpose(1, 2)[:, ::2]


class Steps(nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (h > 0).long()


def test_a_lone_inputs_kept_outputs_pool_as_the_capture_would_in_every_layout() -> None:
    """The serving guard's ``Kept`` reads each output as its memory lies (channels-first or
    channels-last, contiguous) or through a copy (a view in neither order): its features equal the
    capture's pooling of the same pass, whatever the layout; an output that is not a float
    tensor is refused by name, as in a batch."""
    from tympan.probe.features import FeatureCapture, Kept

    torch.manual_seed(0)
    model = Layouts().eval()
    x, lengths = torch.randn(1, 13, 6), torch.tensor([13])
    head = OutputHead("proj", blank=2)
    with FeatureCapture(model, ["conv", "proj", "rows"], head, padding="batch") as capture:
        _, kept = capture.forward((x, lengths), kept=True)
        _, pooled = capture.forward((x, lengths))
        assert isinstance(kept, Kept) and kept.inner == (1, 0, 1, 0)  # rows: copied, time inner
        got = kept.features()
        for name in ("conv", "proj", OUTPUT_KEY):
            np.testing.assert_allclose(got[name], pooled[name], rtol=1e-12, atol=1e-12)
        rows = model.proj(model.conv(x.transpose(1, 2)).transpose(1, 2))[0].T[::2].double()
        np.testing.assert_allclose(  # (not a Conv: its channels are its last axis)
            got["rows"][0], np.concatenate([rows.mean(0).detach().numpy(),
                                            rows.std(0, unbiased=False).detach().numpy()]),
            rtol=1e-6)
    with FeatureCapture(model, ["conv", "steps"], padding="batch") as capture, \
            pytest.raises(InvalidInputError, match="'steps' produced no floating-point"):
        capture.forward((x, lengths), kept=True)


CASES = ("channels first", "channels last", "channels first seen last",
         "one frame, any stride", "one input of a batch", "rows", "every other frame",
         "two inputs of four", "every other row")


@pytest.mark.parametrize("case", CASES)
def test_a_kept_output_is_read_where_it_lies_only_when_its_memory_says_so(case: str) -> None:
    """The guard reads a lone input's outputs by address (``_place``): only a layout whose
    strides say channels-then-time or time-then-channels per input gets a place, and what is
    read there is the output itself; any other view gets none (``_kept`` copies it)."""
    from tympan.probe.features import Kept, _place

    base = torch.randn(4, 7, 5)  # (batch, channels, time)
    tensor, dim, readable = {
        "channels first": (base[:1], 1, True),
        "channels last": (base[:1].transpose(1, 2).contiguous(), -1, True),
        "channels first seen last": (base[:1].transpose(1, 2), -1, True),
        "one frame, any stride": (torch.randn(1, 7).as_strided((1, 1, 7), (7, 99, 1)), -1,
                                  True),
        "one input of a batch": (base[2:3], 1, True),
        "rows": (base[1, :, 0].contiguous().reshape(1, 7), -1, True),
        "every other frame": (base[:1, :, ::2], 1, False),
        "two inputs of four": (base[::2], 1, False),
        "every other row": (base[1, :, 0].reshape(1, 7), -1, False),
    }[case]
    place = _place(tensor, dim)
    if not readable:
        assert place is None
        return
    assert place is not None and place[1] == tensor.shape[0]
    kept = Kept(("x",), None, (tensor,), (place,))
    assert kept.array(0).ctypes.data == tensor.data_ptr()  # the tensor's own memory
    btc = tensor.transpose(1, 2) if dim == 1 else tensor  # (batch, time, channels)
    np.testing.assert_array_equal(kept.btc(0),
                                  btc.numpy() if btc.dim() == 3 else btc[:, None].numpy())


class TimeFirst(nn.Module):
    """Hands its input on time-first, (time, batch, channels), as a seq-first layer does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1).contiguous()


def test_a_lone_inputs_output_that_is_not_batch_first_is_refused_by_name() -> None:
    """A (time, 1, channels) output of a lone input is one contiguous block that reads as
    a batch of ``time`` inputs: the guard's kept path must not read it so (past the batch's
    memory), and the pooling refuses it by name."""
    from tympan.probe.features import FeatureCapture

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj, self.seq = nn.Linear(6, 4), TimeFirst()

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return self.seq(self.proj(x)).transpose(0, 1)

    model = Model().eval()
    with FeatureCapture(model, ["proj", "seq"], padding="batch") as capture, \
            pytest.raises(InvalidInputError, match="'seq' put out 9 rows for a batch of 1"):
        capture.forward((torch.randn(1, 9, 6), torch.tensor([9])), kept=True)


def test_kept_of_arrays_takes_only_what_the_kernel_reads() -> None:
    from tympan.probe.features import Kept

    good = np.zeros((1, 4, 6), np.float32)
    kept = Kept.of_arrays(["a"], None, [good], [1])
    assert kept.inner == (1,) and kept.array(0).shape == (1, 4, 6)
    for bad in (good[:, :, ::2], good.astype(np.float64), good[0]):
        with pytest.raises(InvalidInputError, match="C-contiguous float32"):
            Kept.of_arrays(["a"], None, [bad], [1])
    with pytest.raises(InvalidInputError, match="of one batch"):
        Kept.of_arrays(["a", "b"], None, [good, np.zeros((2, 4, 6), np.float32)], [1, 1])


def test_a_tap_wraps_forward_and_leaves_the_module_as_it_found_it() -> None:
    """The capture wraps each watched module's forward (a forward hook would send every call
    through torch's slow path); leaving it restores the module, and a wrapper someone set
    before or after is kept, ours then only passing calls on."""
    from tympan.probe.features import FeatureCapture, Tap

    model = ConvProj().eval()
    x, lengths = torch.randn(1, 9, 6), torch.tensor([9])
    with FeatureCapture(model, ["conv", "proj"], padding="batch") as capture:
        assert "forward" in vars(model.conv)
        capture.forward((x, lengths))
    assert "forward" not in vars(model.conv) and "forward" not in vars(model.proj)

    calls: list[str] = []
    before = model.conv.forward  # someone's wrapper, set before the capture
    model.conv.forward = lambda *a: (calls.append("theirs"), before(*a))[1]
    ours = Tap(model.conv, lambda _output: calls.append("ours"))
    theirs_after = model.conv.forward
    model.conv.forward = lambda *a: (calls.append("after"), theirs_after(*a))[1]
    model(x, lengths)
    assert calls == ["after", "theirs", "ours"]
    ours.remove()  # someone wrapped after us: their wrapper stays, ours passes calls on
    calls.clear()
    model(x, lengths)
    assert calls == ["after", "theirs"]
    model.conv.forward = before
    tap = Tap(model.conv, lambda _output: calls.append("ours"))
    tap.remove()  # nobody wrapped after us: the wrapper set before is back
    assert model.conv.forward is before


def test_a_torchscript_layer_is_refused_by_name_and_the_model_is_left_as_it_was() -> None:
    """A scripted submodule takes no hooks and its forward cannot be wrapped: watching it is
    refused up front, naming it and what to do, for the capture and the training probe alike
    (torch's own error came from deep inside the capture), and nothing is left wrapped."""
    from tympan.probe import attach
    from tympan.probe.features import FeatureCapture

    model = ConvProj().eval()
    with warnings.catch_warnings():  # (deprecated in torch 2.13, still in older checkpoints)
        warnings.simplefilter("ignore", DeprecationWarning)
        model.conv = torch.jit.script(model.conv)
    for watch in (lambda: FeatureCapture(model, ["proj", "conv"], padding="batch"),
                  lambda: attach(model, layers=["conv"])):
        with pytest.raises(InvalidInputError, match=r"cannot watch 'conv': a TorchScript "
                                                    r"module .* before scripting it"):
            watch()
    assert "forward" not in vars(model.proj)
    with FeatureCapture(model, ["proj"], padding="batch") as capture:  # eager layers still
        _, feats = capture.forward((torch.randn(1, 9, 6), torch.tensor([9])))
    assert feats["proj"].shape == (1, 14)


def test_the_output_head_scores_follow_their_definitions(crops) -> None:
    model, featurize = _asr("conv")
    x, lengths = pad_features([featurize(w) for w in crops[:5]])
    _, feats = collect(model, [(x, lengths)], head=OutputHead("out", blank=0))
    captured: dict[str, torch.Tensor] = {}
    handle = model.out.register_forward_hook(lambda _m, _i, o: captured.__setitem__("o", o))
    with torch.no_grad():
        for i in range(5):
            model(x[i:i + 1, :int(lengths[i])], lengths[i:i + 1])
            logits = captured["o"][0].double()
            probs = logits.softmax(-1)
            expected = [float(-logits.logsumexp(-1).mean()), float(probs.max(-1).values.mean()),
                        float((logits.argmax(-1) == 0).double().mean())]
            np.testing.assert_allclose(feats[OUTPUT_KEY][i], expected, rtol=1e-6)
    handle.remove()


def test_the_scorer_takes_waveforms_padded_or_as_a_list(crops) -> None:
    from recipes.asr_ctc.train import Config, features

    model, _ = _asr("conv")
    cfg = Config(hidden=32, layers=2)

    def prepare(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_features([features(cfg, w) for w in waves])

    profile = fit(model, [prepare(crops[i:i + 40]) for i in range(0, 120, 40)],
                  head=OutputHead("out", blank=0))
    loaded = Profile.load(profile.save())
    scorer = Scorer(model, loaded, prepare, 16000, alpha=0.05, batch_size=7)
    test = crops[120:140]
    verdicts = scorer.score(test)
    assert len(verdicts) == 20 and list(verdicts[0].z) == ["subsample", "encoder.0",
                                                           "encoder.1", "out", "output"]
    assert set(verdicts[0].outputs) == {"energy", "msp", "blank_ratio"}
    padded = np.zeros((20, max(len(w) for w in test)), np.float32)
    for i, w in enumerate(test):
        padded[i, :len(w)] = w
    again = scorer.score(torch.from_numpy(padded), lengths=[len(w) for w in test])
    for a, b in zip(verdicts, again, strict=True):
        assert a.p_value == b.p_value and a.flagged == b.flagged
        np.testing.assert_allclose(a.score, b.score, rtol=1e-5)
    # the p-value is the score's conformal rank among the calibration inputs' scores
    for v in verdicts:
        rank = 1 + (loaded.calibration >= v.score).sum()
        assert v.p_value == rank / (loaded.n_calibration + 1)
        assert v.flagged == (v.p_value <= 0.05) and (v.entry_layer is None) == (not v.flagged)
        assert v.score == max(v.z.values()) or v.score >= max(v.z.values())
    assert verdicts[0].to_json()["z"].keys() == verdicts[0].z.keys()


def test_the_combined_score_is_the_largest_z_and_ignores_the_calibration_inputs(crops) -> None:
    """How the parts are weighted (issue 12, item 4): each layer's distance and each output
    score in z units of the fit part, the combined score their largest; nothing in it comes
    from the calibration inputs, which only set the conformal p-value."""
    model, featurize = _asr("conv")
    feats = [featurize(w) for w in crops]
    head = OutputHead("out", blank=0)
    fitted = _batches(feats[:80], 40)
    profiles = [fit(model, fitted, head=head, calibration=_batches(feats[a:b], 20))
                for a, b in ((80, 120), (120, 140))]
    test = _batches(feats[140:], 20)
    one, other = (p.score(model, test, alpha=0.05) for p in profiles)
    np.testing.assert_array_equal(one.anomaly_score,
                                  np.max(np.concatenate([one.z, one.output_z], axis=1), 1))
    assert one.output_names == ["energy", "msp", "blank_ratio"]
    assert (one.anomaly_score >= one.output_z.max(1)).all()
    np.testing.assert_array_equal(one.anomaly_score, other.anomaly_score)
    assert profiles[0].n_calibration == 40 and profiles[1].n_calibration == 20
    for report, profile in ((one, profiles[0]), (other, profiles[1])):
        ranks = 1 + (profile.calibration[None, :] >= report.anomaly_score[:, None]).sum(1)
        np.testing.assert_array_equal(report.p_value, ranks / (profile.n_calibration + 1))


@pytest.mark.parametrize("name", ["asr-conv", "asr-transformer", "speaker-xvector"])
def test_a_lone_inputs_kept_outputs_score_as_its_features_do(name, crops) -> None:
    """The serving guard's path: a lone input's outputs kept unpooled (``Kept``) and pooled
    and scored in one compiled call give the verdict the pooled features give (channels-first
    and channels-last layers, a head that is a watched layer too, with and without a blank)."""
    from tympan.probe.features import FeatureCapture, Kept
    from tympan.probe.scorer import kept_verdicts, verdicts

    model, featurize = MODELS[name]()
    head = HEADS.get(name, OutputHead("out", blank=0))
    feats = [featurize(w) for w in crops[:60]]
    profile = fit(model, _batches(feats[:40], 20), head=head,
                  calibration=_batches(feats[40:56], 16))
    layers = profile.layer_names
    with FeatureCapture(model, layers, head, padding="batch") as capture, torch.no_grad():
        for f in feats[56:60]:
            batch = (f[None], torch.tensor([len(f)]))
            output, kept = capture.forward(batch, kept=True)
            _, pooled = capture.forward(batch)
            assert isinstance(kept, Kept) and isinstance(pooled, dict)
            for name_, values in kept.features().items():
                np.testing.assert_allclose(values, pooled[name_], rtol=1e-12, atol=1e-12)
            fast, slow = (verdicts(r)[0] for r in (profile.combine_kept(kept, 0.1),
                                                     profile.combine_features(pooled, 0.1)))
            assert kept_verdicts(profile, kept, 0.1)[0] == fast  # the guard's path
            assert fast.entry_layer == slow.entry_layer and fast.p_value == slow.p_value
            np.testing.assert_allclose(list(fast.z.values()), list(slow.z.values()),
                                       rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(list(fast.outputs.values()),
                                       list(slow.outputs.values()), rtol=1e-12)
            expected = model(*batch)
            if isinstance(output, tuple):
                output, expected = output[0], expected[0]
            assert torch.equal(output, expected)
        # a lone input padded past its length: pooled over its valid frames, not kept
        padded = torch.cat([f, torch.zeros(7, f.shape[1])])[None]
        _, got = capture.forward((padded, torch.tensor([len(f)])), kept=True)
        assert isinstance(got, dict)
    # another architecture's outputs: refused, the layer named
    arrays = list(kept.arrays)
    arrays[1] = np.ascontiguousarray(np.concatenate([arrays[1]] * 2, axis=2 - kept.inner[1]))
    with pytest.raises(InvalidInputError, match=f"layer '{layers[1]}' has .* channels but"):
        profile.combine_kept(Kept.of_arrays(kept.names, kept.head, arrays, kept.inner), 0.1)
