"""CTC speech recognition of digit strings, trained on a synthesized corpus, recorded with tympan.

espeak-ng voices say strings of three to five English digits ("four one nine"); a small
encoder (conv, GRU or transformer) over log-mel or MFCC frames learns to spell them with CTC
over characters, and greedy decoding is scored on speakers it never heard (the test split is
speaker-disjoint). Every run records its resolved config, per-step loss and learning rate,
per-epoch WER/CER with 95% bootstrap intervals, a few clips captioned with what the model
heard, and the checkpoint (weights + config + run id, whose record holds the code version).

    .venv/bin/tympan run recipes/asr_ctc                           # configs/base.yaml
    .venv/bin/tympan run recipes/asr_ctc encoder=gru seed=3 epochs=2
    .venv/bin/tympan run recipes/asr_ctc --config my.yaml front_end=mfcc store=/tmp/s
    .venv/bin/python -m recipes.asr_ctc.train encoder=gru          # the same, without tympan run
    .venv/bin/tympan runs --project asr-ctc

The first run synthesizes the corpus into ``.tympan/corpora/digits-v12-u50-s0`` (about
10 s); later runs reuse it. On two CPU cores the defaults (conv) take about 50 s in all and
reach about 6% test WER; ``encoder=gru`` about 3 minutes and 1%; ``encoder=transformer`` needs
more than 20 epochs.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

import tympan
import tympan.config
from tympan.audio.corpus import Corpus, Utterance, nested_subset, synth_corpus
from tympan.audio.features import (
    log_mel,
    mfcc,
    normalize_frames,
    pad_features,
    pad_waves,
    stft_frames,
)
from tympan.audio.io import load
from tympan.audio.metrics import character_error_rate, word_error_rate
from tympan.errors import ConfigError, NotFoundError
from tympan.schedules import warmup_schedule

BASE_CONFIG = Path(__file__).parent / "configs" / "base.yaml"
SAMPLE_RATE = 16000  # the corpus is synthesized at 16 kHz
# CTC targets: index 0 is the blank, then space and the letters of "zero" ... "nine".
ALPHABET = " efghinorstuvwxz"
BLANK = 0


@dataclass(frozen=True)
class Config:
    project: str = "asr-ctc"  # tympan project the run is filed under
    # corpus
    voices: int = 12  # espeak-ng speakers; 2/3 train, 1/6 valid, 1/6 test (unseen voices)
    per_speaker: int = 50  # digit strings each speaker says
    corpus_seed: int = 0  # picks the speakers and the texts
    corpus_dir: str | None = None  # None: .tympan/corpora/digits-v{voices}-u{per_speaker}-s{seed}
    extra_train: str | None = None  # comma-separated manifest files (.jsonl, paths relative
    # to each file's folder): every utterance in them joins the training split (new data)
    train_fraction: float = 1.0  # train on this nested subset of the training split (0, 1];
    # an epoch still takes as many steps as a full one (the subset repeats): same compute
    # front end
    front_end: Literal["logmel", "mfcc"] = "logmel"  # features fed to the encoder
    n_mels: int = 40  # mel bands (log-mel features, and the bands MFCCs are taken from)
    n_mfcc: int = 20  # cepstral coefficients when front_end=mfcc
    hop: int = 160  # samples between frames: 10 ms at 16 kHz
    # model
    encoder: Literal["conv", "gru", "transformer"] = "conv"  # after a stride-2 conv subsampler
    hidden: int = 160  # width of the encoder
    layers: int = 3  # encoder blocks / recurrent layers / transformer layers
    dropout: float = 0.1  # inside the encoder
    # augmentation
    spec_augment: bool = True  # mask random bands and frames of the training features
    freq_masks: int = 2  # frequency masks per utterance
    freq_width: int = 6  # widest frequency mask, in bands
    time_masks: int = 2  # time masks per utterance
    time_width: int = 12  # widest time mask, in frames
    # optimization
    lr: float = 3e-3  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    schedule: Literal["constant", "cosine"] = "cosine"  # cosine: linear warmup, cosine to 0
    warmup_steps: int = 50  # linear warmup steps (both schedules)
    epochs: int = 20  # passes over the training split
    batch_size: int = 16  # utterances per step
    seed: int = 0  # model init, batch order and augmentation
    # recording
    audio_samples: int = 2  # validation clips logged per epoch with "ref | hyp" captions
    n_boot: int = 2000  # bootstrap resamples for the WER/CER intervals
    store: str | None = None  # tympan store; None: TYMPAN_STORE, else ./.tympan

    def __post_init__(self) -> None:
        small = [name for name in ("per_speaker", "n_mels", "hop", "hidden", "layers", "epochs",
                                   "batch_size", "n_boot") if getattr(self, name) < 1]
        if small:
            raise ConfigError(f"{', '.join(small)} must be 1 or more")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction={self.train_fraction}: use a fraction in (0, 1]")
        if self.encoder == "transformer" and self.hidden % 4:
            raise ConfigError(f"hidden={self.hidden}: the transformer's 4 heads need a "
                              "multiple of 4")


# ---------------------------------------------------------------------------------------------
# Config: configs/base.yaml, then key=value overrides, both typed by the dataclass above.


def load_config(path: str | Path = BASE_CONFIG, overrides: Sequence[str] = ()) -> Config:
    """``Config`` from the YAML file at ``path``, then ``key=value`` overrides."""
    return tympan.config.load_config(Config, path, overrides)


# ---------------------------------------------------------------------------------------------
# Data: synthesize (or reuse) the corpus, compute features once, batch with padding.


def corpus_dir(cfg: Config) -> str:
    return cfg.corpus_dir or (f".tympan/corpora/digits-v{cfg.voices}-u{cfg.per_speaker}"
                              f"-s{cfg.corpus_seed}")


def encode_text(text: str) -> list[int]:
    return [ALPHABET.index(c) + 1 for c in text]


def features(cfg: Config, wav: np.ndarray) -> torch.Tensor:
    """(frames, dims) features, normalized per utterance so loudness and speaker shift less."""
    if cfg.front_end == "logmel":
        x = log_mel(wav, sr=SAMPLE_RATE, n_fft=400, hop_length=cfg.hop, n_mels=cfg.n_mels)
    else:
        x = mfcc(wav, sr=SAMPLE_RATE, n_mfcc=cfg.n_mfcc, n_fft=400, hop_length=cfg.hop,
                 n_mels=cfg.n_mels)
    x = x.T.float()
    return (x - x.mean(0)) / (x.std(0) + 1e-5)


def batch_features(cfg: Config, waves: torch.Tensor, lengths: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``features`` of each clip of a zero-padded batch, in one STFT for the whole batch:
    (batch, frames, dims) zero-padded, and each clip's frames."""
    kw = {"sr": SAMPLE_RATE, "n_fft": 400, "hop_length": cfg.hop, "n_mels": cfg.n_mels,
          "lengths": lengths}
    x = log_mel(waves, **kw) if cfg.front_end == "logmel" else mfcc(waves, n_mfcc=cfg.n_mfcc, **kw)
    frames = stft_frames(lengths, n_fft=400, hop_length=cfg.hop)
    return normalize_frames(x.transpose(1, 2).float(), frames), frames


@dataclass
class Split:
    utterances: list[Utterance]
    waves: list[np.ndarray]
    feats: list[torch.Tensor]


def extra_utterances(cfg: Config) -> list[tuple[Utterance, Path]]:
    """The utterances of ``extra_train``'s manifests, each with the file its audio is in."""
    out = []
    for manifest in (cfg.extra_train or "").split(","):
        if not manifest.strip():
            continue
        path = Path(manifest.strip())
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"extra_train: cannot read manifest {path}: {exc}") from None
        for line in filter(str.strip, lines):
            u = Utterance.from_json(json.loads(line))
            out.append((replace(u, path=f"{path.name}:{u.path}"), path.parent / u.path))
    return out


def prepare(cfg: Config, corpus: Corpus, name: str) -> Split:
    files = [(u, corpus.file(u)) for u in corpus.split(name)]
    if name == "train":  # learning curves: larger fractions hold every smaller one's utterances
        files += extra_utterances(cfg)
        keep = {u.path for u in nested_subset([u for u, _ in files], cfg.train_fraction)}
        files = [(u, f) for u, f in files if u.path in keep]
    waves = [load(f, mono=True)[0] for _, f in files]
    return Split([u for u, _ in files], waves, [features(cfg, w) for w in waves])


def spec_augment(cfg: Config, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """SpecAugment's frequency and time masks (no warping), set to 0, the normalized mean."""
    b, t, d = x.shape
    keep = torch.ones_like(x, dtype=torch.bool)
    bins, frames = torch.arange(d), torch.arange(t)
    for _ in range(cfg.freq_masks):
        width = torch.randint(0, cfg.freq_width + 1, (b, 1))
        start = (torch.rand(b, 1) * (d - width + 1)).long()
        keep &= ~((bins >= start) & (bins < start + width))[:, None, :]
    for _ in range(cfg.time_masks):
        width = torch.randint(0, cfg.time_width + 1, (b, 1))
        start = (torch.rand(b, 1) * (lengths[:, None] - width).clamp(min=1)).long()
        keep &= ~((frames >= start) & (frames < start + width))[:, :, None]
    return x * keep


# ---------------------------------------------------------------------------------------------
# Model: stride-2 conv subsampling (CTC needs fewer frames than characters, not many more),
# then one of three encoders, then per-frame character scores.


class ConvBlock(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 5, padding=2)
        self.norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(batch, frames, width) -> the same; ``valid`` (batch, frames, 1) is 1 on real
        frames and 0 on padding, which the convolution then reads as the zeros it pads an
        unpadded input with: a frame's output never depends on the batch's padding."""
        h = self.conv((x * valid).transpose(1, 2)).transpose(1, 2)
        return x + self.drop(nn.functional.gelu(self.norm(h)))


class PackedEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` (same weights, same answers) that at inference computes
    only the batch's real frames: their rows packed end to end into one (frames, width)
    sequence for the linear layers and norms, attention block by block (each clip attends to
    itself only: the block-diagonal mask, without computing its zero blocks). A padded batch
    then costs what its clips cost, and the matrix products are as large as the batch. In
    and out it is the stock layer's padded (batch, time, width), zeros on padding, so a probe's
    hook on the layer pools each clip by its length as before.

    Training, and tracing for export, take the stock path: dropout's random draws stay those
    of the recorded runs, and an exported graph keeps static, exact padded shapes (packing
    gathers rows whose count depends on the lengths). So does a layer with hooks inside it
    (they expect the stock submodules' calls), as torch's own fast path does."""

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None,
                is_causal: bool = False) -> torch.Tensor:
        pad = src_key_padding_mask
        if (self.training or src_mask is not None or is_causal or pad is None
                or src.dim() != 3 or not _plain_eager() or self._hooked_inside()):
            return super().forward(src, src_mask, pad, is_causal)
        if pad.dtype != torch.bool:  # nn.TransformerEncoder hands it over as 0 / -inf
            if not bool(((pad == 0) | (pad == -math.inf)).all()):
                return super().forward(src, src_mask, pad, is_causal)  # a bias, not padding
            pad = pad != 0
        b, t, width = src.shape
        counts = (~pad).sum(1).tolist()
        rows = (~pad).reshape(b * t).nonzero().squeeze(1)  # each clip's frames, in order
        x = src.reshape(b * t, width).index_select(0, rows)
        if self.norm_first:
            x = x + self._packed_attention(self.norm1(x), counts)
            x = x + self._packed_feed_forward(self.norm2(x))
        else:
            x = self.norm1(x + self._packed_attention(x, counts))
            x = self.norm2(x + self._packed_feed_forward(x))
        return src.new_zeros(b * t, width).index_copy_(0, rows, x).view(b, t, width)

    def _packed_attention(self, x: torch.Tensor, counts: list[int]) -> torch.Tensor:
        attn = self.self_attn
        heads, width = attn.num_heads, x.shape[1]
        qkv = nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias)
        # (3, 1, heads, frames, d): 4-d, so that CPU attention takes its fused kernel.
        qkv = qkv.view(-1, 3, heads, width // heads).permute(1, 2, 0, 3)[:, None]
        blocks, start = [], 0
        for n in counts:  # one clip's block of the block-diagonal attention
            q, k, v = qkv[..., start:start + n, :]
            blocks.append(nn.functional.scaled_dot_product_attention(q, k, v))
            start += n
        out = torch.cat(blocks, 2)[0].transpose(0, 1).reshape(-1, width)
        return nn.functional.linear(out, attn.out_proj.weight, attn.out_proj.bias)

    def _packed_feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))  # dropout: off at inference

    def _hooked_inside(self) -> bool:
        return any(m._forward_hooks or m._forward_pre_hooks
                   for m in self.modules() if m is not self)


def _plain_eager() -> bool:
    """Not traced, scripted, compiled or exported: packing's shapes depend on the data."""
    return not (torch.jit.is_tracing() or torch.jit.is_scripting()
                or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export())


class CTCModel(nn.Module):
    def __init__(self, cfg: Config, dims: int) -> None:
        super().__init__()
        self.encoder_kind = cfg.encoder
        self.subsample = nn.Conv1d(dims, cfg.hidden, 5, stride=2, padding=2)
        if cfg.encoder == "conv":
            self.encoder: nn.Module = nn.ModuleList(
                [ConvBlock(cfg.hidden, cfg.dropout) for _ in range(cfg.layers)])
        elif cfg.encoder == "gru":
            self.encoder = nn.GRU(cfg.hidden, cfg.hidden // 2, cfg.layers, batch_first=True,
                                  bidirectional=True,
                                  dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        else:
            layer = PackedEncoderLayer(cfg.hidden, 4, 2 * cfg.hidden, cfg.dropout,
                                       batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Linear(cfg.hidden, len(ALPHABET) + 1)

    @staticmethod
    def out_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return (lengths - 1) // 2 + 1  # the subsampler's kernel 5, stride 2, padding 2

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, frames/2, classes) log-probabilities. Padding past ``lengths`` never
        changes the frames before it: a padded batch gives each input the outputs it gets
        alone (the serving batcher relies on it)."""
        frames = torch.arange(x.shape[1], device=x.device)
        x = x * (frames[None, :] < lengths[:, None])[..., None]  # zeros, as the conv pads
        h = nn.functional.gelu(self.subsample(x.transpose(1, 2))).transpose(1, 2)
        if self.encoder_kind == "conv":
            frames = torch.arange(h.shape[1], device=x.device)
            valid = (frames[None, :] < self.out_lengths(lengths)[:, None])[..., None]
            valid = valid.to(h.dtype)
            for block in self.encoder:
                h = block(h, valid)
        elif self.encoder_kind == "gru":
            packed = nn.utils.rnn.pack_padded_sequence(
                h, self.out_lengths(lengths), batch_first=True, enforce_sorted=False)
            h = nn.utils.rnn.pad_packed_sequence(self.encoder(packed)[0], batch_first=True,
                                                 total_length=h.shape[1])[0]
        else:
            # The conv subsampler gives relative position (there is no positional encoding
            # to restart per clip); the mask hides the padding, which at inference the layers
            # pack away (PackedEncoderLayer).
            pad = torch.arange(h.shape[1]) >= self.out_lengths(lengths)[:, None]
            h = self.encoder(h, src_key_padding_mask=pad)
        return self.out(h).log_softmax(-1)


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """Best class per frame, repeats collapsed, blanks dropped, spaces tidied."""
    texts = []
    for best, n in zip(log_probs.argmax(-1), lengths.tolist(), strict=True):
        ids = torch.unique_consecutive(best[:n]).tolist()
        texts.append(" ".join("".join(ALPHABET[i - 1] for i in ids if i != BLANK).split()))
    return texts


# ---------------------------------------------------------------------------------------------
# Training


@torch.no_grad()
def transcribe(model: CTCModel, feats: list[torch.Tensor], batch_size: int = 64) -> list[str]:
    model.eval()
    hyps: list[str] = []
    for i in range(0, len(feats), batch_size):
        x, lengths = pad_features(feats[i:i + batch_size])
        hyps += greedy_decode(model(x, lengths), model.out_lengths(lengths))
    return hyps


@dataclass
class Evaluation:
    scores: dict[str, float]  # {split}/wer, {split}/wer_low, {split}/wer_high, and cer
    hypotheses: list[str]
    per_utterance: dict[str, Any]  # ids, and errors/counts per unit: studies resample these


def evaluate(cfg: Config, model: CTCModel, split: Split, name: str) -> Evaluation:
    """WER and CER of ``split`` with bootstrap bounds, as ``{name}/wer``, ``..._low``, ..."""
    hyps = transcribe(model, split.feats)
    refs = [u.text for u in split.utterances]
    speakers = [u.speaker for u in split.utterances]
    scores: dict[str, float] = {}
    per_utterance: dict[str, Any] = {"ids": [u.path for u in split.utterances]}
    for unit, measure in (("wer", word_error_rate), ("cer", character_error_rate)):
        report = measure(refs, hyps, speakers, n_boot=cfg.n_boot, seed=cfg.seed)
        scores |= {f"{name}/{unit}": report.rate, f"{name}/{unit}_low": report.ci.low,
                   f"{name}/{unit}_high": report.ci.high}
        per_utterance[unit] = {"errors": [u.errors for u in report.utterances],
                               "counts": [u.reference_length for u in report.utterances]}
    return Evaluation(scores, hyps, per_utterance)


def train(cfg: Config) -> str:
    """Train and record one run; returns its id."""
    started = time.monotonic()
    cfg = replace(cfg, corpus_dir=corpus_dir(cfg))  # record where the corpus actually is
    tympan.seed_everything(cfg.seed)
    corpus = synth_corpus(cfg.corpus_dir, vocab="digits", voices=cfg.voices,
                          utterances_per_speaker=cfg.per_speaker, seed=cfg.corpus_seed,
                          progress=sys.stderr.isatty())
    data = {name: prepare(cfg, corpus, name) for name in ("train", "valid", "test")}
    model = CTCModel(cfg, dims=data["train"].feats[0].shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # A learning curve varies data, not compute: an epoch of a subset is as long as a full one.
    epoch_size = len(corpus.split("train")) + len(extra_utterances(cfg))
    steps_per_epoch = math.ceil(epoch_size / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_schedule(
        cfg.schedule, cfg.warmup_steps, cfg.epochs * steps_per_epoch))
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    train_split = data["train"]
    targets = [torch.tensor(encode_text(u.text)) for u in train_split.utterances]

    run = tympan.init(project=cfg.project, config=asdict(cfg), store=cfg.store,
                      tags=["asr", "ctc", cfg.encoder, cfg.front_end])
    with run:
        # How much it learned from: the x axis of a learning curve (docs/quantify.md).
        run.log({"data/train_utterances": len(targets),
                 "data/train_hours": sum(u.duration for u in train_split.utterances) / 3600})
        step = 0
        for epoch in range(cfg.epochs):
            model.train()
            repeats = math.ceil(epoch_size / len(targets))
            order = torch.cat([torch.randperm(len(targets)) for _ in range(repeats)])
            for i in order[:epoch_size].split(cfg.batch_size):
                x, lengths = pad_features([train_split.feats[j] for j in i])
                if cfg.spec_augment:
                    x = spec_augment(cfg, x, lengths)
                y = [targets[j] for j in i]
                log_probs = model(x, lengths)
                loss = ctc(log_probs.transpose(0, 1), torch.cat(y), model.out_lengths(lengths),
                           torch.tensor([len(t) for t in y]))
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # early CTC spikes
                opt.step()
                run.log({"train/loss": loss, "lr": sched.get_last_lr()[0]}, step=step)
                sched.step()
                step += 1
            valid_eval = evaluate(cfg, model, data["valid"], "valid")
            test_eval = evaluate(cfg, model, data["test"], "test")
            scores, hyps, test_scores = valid_eval.scores, valid_eval.hypotheses, test_eval.scores
            run.log(scores | test_scores | {"epoch": epoch}, step=step)
            valid = data["valid"]
            for k in range(min(cfg.audio_samples, len(hyps))):
                run.log_audio(f"valid/sample{k}", valid.waves[k], SAMPLE_RATE, step=step,
                              caption=f"ref: {valid.utterances[k].text} | hyp: {hyps[k]}")
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {loss.item():.3f}  "
                  f"valid WER {scores['valid/wer']:.3f}  test WER {test_scores['test/wer']:.3f}"
                  f"  ({time.monotonic() - started:.0f} s)", flush=True)
        # Weights + resolved config + run id (whose record holds the git commit, diff and
        # packages): enough to rebuild exactly this model.
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "config": asdict(cfg), "alphabet": ALPHABET,
                    "run_id": run.id}, buffer)
        run.log_artifact(buffer.getvalue(), name="model.pt")
        # Per-utterance errors of the final model: lets a study resample test utterances.
        run.log_artifact(json.dumps(test_eval.per_utterance).encode(),
                         name="test/utterances.json")
        run.log({"wall_seconds": time.monotonic() - started}, step=step)
    print(f"{run.name} ({run.id}): test WER {test_scores['test/wer']:.3f} "
          f"[{test_scores['test/wer_low']:.3f}, {test_scores['test/wer_high']:.3f}], "
          f"CER {test_scores['test/cer']:.3f}")
    return run.id


# ---------------------------------------------------------------------------------------------
# Inference and probing: what `tympan.models.load` (and serving) and `tympan probe` need to
# rebuild this recipe's model from a checkpoint.


class AsrInference:
    """A trained CTCModel from its model.pt: padded waveforms -> features -> transcripts."""

    sample_rate = SAMPLE_RATE

    def __init__(self, checkpoint: bytes) -> None:
        state = torch.load(io.BytesIO(checkpoint))
        self.cfg = Config(**state["config"])
        dims = self.cfg.n_mels if self.cfg.front_end == "logmel" else self.cfg.n_mfcc
        self.model = CTCModel(self.cfg, dims=dims)
        self.model.load_state_dict(state["model"])
        self.model.eval()

    def preprocess(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
        """(features, frames) of a zero-padded (batch, samples) batch: each utterance's are
        ``features`` of it alone (normalized over its own frames), made in one pass."""
        return batch_features(self.cfg, waves, lengths)

    def postprocess(self, log_probs: torch.Tensor, inputs: tuple[torch.Tensor, torch.Tensor]
                    ) -> list[str]:
        return greedy_decode(log_probs, self.model.out_lengths(inputs[1]))

    def describe(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"front_end": cfg.front_end, "n_mels": cfg.n_mels,
                "n_mfcc": cfg.n_mfcc if cfg.front_end == "mfcc" else None, "n_fft": 400,
                "hop": cfg.hop, "normalization": "per utterance (mean and variance)",
                "encoder": cfg.encoder, "output": "transcript (greedy CTC over characters)"}


def inference(checkpoint: bytes) -> AsrInference:
    """The registry's hook: a checkpoint's model, ready for inference (docs/registry.md)."""
    return AsrInference(checkpoint)


class AsrServing:
    """What ``tympan serve`` answers for each request: the transcript."""

    def __init__(self, ready: AsrInference) -> None:
        self.ready = ready

    def answer(self, log_probs: torch.Tensor, inputs: tuple[torch.Tensor, torch.Tensor]
               ) -> list[dict[str, Any]]:
        return [{"transcript": text} for text in self.ready.postprocess(log_probs, inputs)]


def serving(ready: AsrInference, **options: str) -> AsrServing:
    """The serving hook (docs/serving.md): this recipe takes no --option."""
    if options:
        raise ConfigError(f"asr_ctc serving takes no options, got {', '.join(options)}")
    return AsrServing(ready)


class AsrProbeTarget:
    """Rebuilds a run's model through ``inference()`` and batches waveforms the same way."""

    sample_rate = SAMPLE_RATE
    output_layer = "out"  # its output is the logits (log_softmax comes after): energy, MSP
    blank = BLANK  # and the share of blank frames join the layers' anomaly scores

    def __init__(self) -> None:
        self.ready: AsrInference | None = None

    def load_model(self, run: Any) -> CTCModel:
        self.ready = inference(run.read_artifact("model.pt"))
        return self.ready.model

    def split(self, run: Any, name: str) -> list[tuple[str, np.ndarray]]:
        cfg = Config(**run.config)
        # The run recorded its corpus folder as given, often relative to the folder it ran
        # in: read it there, and never synthesize a new corpus somewhere else.
        folder = Path(corpus_dir(cfg))
        if not folder.is_absolute():
            ran_in = ((run.environment() or {}).get("command") or {}).get("cwd")
            folder = Path(ran_in or ".") / folder
        if not folder.is_dir():
            raise NotFoundError(f"run {run.id}'s corpus is not at {folder} (corpus_dir="
                                f"{cfg.corpus_dir!r}, relative to the folder the run ran in): "
                                f"restore it there, or pass audio files with --data")
        corpus = synth_corpus(str(folder), vocab="digits", voices=cfg.voices,
                              utterances_per_speaker=cfg.per_speaker, seed=cfg.corpus_seed,
                              progress=False)
        return [(u.path, load(corpus.file(u), mono=True)[0]) for u in corpus.split(name)]

    def batch(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ready is None:
            raise RuntimeError("load_model() first: the features depend on the run's config")
        return self.ready.preprocess(*pad_waves(waves))


def probe_target() -> AsrProbeTarget:
    return AsrProbeTarget()


def main(argv: Sequence[str] | None = None) -> None:
    cfg = tympan.config.parse_command_line(Config, BASE_CONFIG, argv, __doc__.splitlines()[0])
    if "OMP_NUM_THREADS" not in os.environ:  # a study runner sets it per trial
        torch.set_num_threads(2)
    train(cfg)


if __name__ == "__main__":
    main()
