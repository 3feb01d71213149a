"""x-vector speaker identification and verification on synthesized voices, recorded with tympan.

espeak-ng voices (a variant at a pitch and a rate) each say strings of digits; a TDNN over
log-mel or MFCC frames, statistics pooling and a segment-level embedding learn to tell the
training speakers apart. Two questions are scored every epoch: closed-set identification of
the training speakers on utterances held out from training, and verification (cosine scores of
embeddings, every pair of utterances a trial) on speakers the model never heard, the corpus's
valid and test splits, as EER and minDCF. Every run records its resolved config, per-step loss
and learning rate, per-epoch accuracy/EER/minDCF, a few clips captioned with the true and the
predicted speaker, and the checkpoint (weights + config + speakers + run id, whose record holds
the code version).

    .venv/bin/tympan run recipes/speaker_id                           # configs/base.yaml
    .venv/bin/tympan run recipes/speaker_id pooling=mean embedding=64 seed=3
    .venv/bin/tympan run recipes/speaker_id --config my.yaml loss=am_softmax store=/tmp/s
    .venv/bin/python -m recipes.speaker_id.train seed=1               # the same, without tympan run
    .venv/bin/tympan runs --project speaker-id

Metric keys: ``heldout/accuracy``, ``heldout/eer``, ``heldout/min_dcf`` (held-out utterances
of the training speakers), ``valid/eer``, ``valid/min_dcf``, ``test/eer``, ``test/min_dcf``
(unseen speakers), ``train/accuracy``, ``train/loss``, ``lr``.

The first run synthesizes the corpus into ``.tympan/corpora/digits-v36-u40-s0`` (1440
utterances, 37 minutes of audio; 10-25 s); later runs reuse it. The defaults train on 24
speakers (30 utterances each, 10 held out) and verify on 6 valid and 6 test speakers never
heard. Measured on two shared, loaded CPU cores (so times are pessimistic), seeds 0/1/2:
held-out accuracy 97.9/95.0/96.7% (chance 4%), test EER 2.9/4.9/3.4%, valid EER
6.2/6.1/6.1%, test minDCF (p_target 0.01) 0.36/0.57/0.41, valid minDCF 0.97/0.98/0.98, in
40-85 s of training after the corpus exists. minDCF near 1 means that at a 1% target prior no
threshold beats rejecting everything: a few non-target pairs (the same espeak variant at a
neighbouring pitch or rate) outscore the target pairs. With only 6 unseen speakers per split
the EERs move by a few points with the seed. On seed 0, ``norm=meanvar`` (97.1%, test EER
3.6%), ``pooling=mean`` (97.5%, 4.1%), ``front_end=mfcc`` (97.1%, 4.0%) and
``loss=am_softmax`` (95.0%, 4.5%) did not help.
"""

from __future__ import annotations

import io
import math
import os
import random
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
from tympan.audio.metrics import eer, min_dcf
from tympan.errors import ConfigError
from tympan.schedules import warmup_schedule

BASE_CONFIG = Path(__file__).parent / "configs" / "base.yaml"
SAMPLE_RATE = 16000  # the corpus is synthesized at 16 kHz
# The x-vector frame layers as (kernel, dilation): a context of 5, then 3 at dilation 2 and 3
# at dilation 3 (15 frames in all), then two frame-wise layers.
FRAME_LAYERS = ((5, 1), (3, 2), (3, 3), (1, 1), (1, 1))


@dataclass(frozen=True)
class Config:
    project: str = "speaker-id"  # tympan project the run is filed under
    # corpus
    voices: int = 36  # espeak-ng speakers; 2/3 train, 1/6 valid, 1/6 test (unseen voices)
    per_speaker: int = 40  # utterances each speaker says
    vocab: Literal["digits", "commands", "sentences"] = "digits"  # what they say
    corpus_seed: int = 0  # picks the speakers and the texts
    corpus_dir: str | None = None  # None: .tympan/corpora/{vocab}-v{voices}-u{per_speaker}-s{seed}
    heldout: float = 0.25  # fraction of each training speaker's utterances never trained on
    train_fraction: float = 1.0  # train on this nested subset of the rest (0, 1]
    # front end
    front_end: Literal["logmel", "mfcc"] = "logmel"  # features fed to the TDNN
    n_mels: int = 40  # mel bands (log-mel features, and the bands MFCCs are taken from)
    n_mfcc: int = 30  # cepstral coefficients when front_end=mfcc
    hop: int = 160  # samples between frames: 10 ms at 16 kHz
    norm: Literal["none", "mean", "meanvar"] = "mean"  # per-utterance normalization (CMN)
    # model
    channels: int = 256  # width of the TDNN frame layers
    pooling: Literal["stats", "mean"] = "stats"  # stats: mean and std over frames; mean: mean
    embedding: int = 128  # size of the segment-level embedding that verification scores
    dropout: float = 0.0  # before the classifier
    loss: Literal["softmax", "am_softmax"] = "softmax"  # am_softmax: additive-margin softmax
    margin: float = 0.2  # am_softmax's cosine margin
    scale: float = 30.0  # am_softmax's logit scale
    # optimization
    lr: float = 3e-3  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    schedule: Literal["constant", "cosine"] = "cosine"  # cosine: linear warmup, cosine to 0
    warmup_steps: int = 30  # linear warmup steps (both schedules)
    epochs: int = 12  # passes over the training utterances
    batch_size: int = 32  # utterances per step
    seed: int = 0  # held-out utterances, model init and batch order
    # recording
    audio_samples: int = 2  # held-out clips logged per epoch with "speaker | predicted" captions
    p_target: float = 0.01  # prior of a target trial in minDCF
    store: str | None = None  # tympan store; None: TYMPAN_STORE, else ./.tympan

    def __post_init__(self) -> None:
        small = [name for name in ("per_speaker", "n_mels", "n_mfcc", "hop", "channels",
                                   "embedding", "epochs", "batch_size")
                 if getattr(self, name) < 1]
        if small:
            raise ConfigError(f"{', '.join(small)} must be 1 or more")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size={self.batch_size}: BatchNorm needs 2 or more "
                              "utterances per step")
        if not 0.0 < self.heldout < 1.0:
            raise ConfigError(f"heldout={self.heldout}: the held-out fraction must be between "
                              "0 and 1 (exclusive)")
        if round(self.per_speaker * self.heldout) < 1:
            raise ConfigError(f"per_speaker={self.per_speaker} with heldout={self.heldout} "
                              "holds out no utterance: raise one of them")
        if not 0.0 < self.p_target < 1.0:
            raise ConfigError(f"p_target={self.p_target} must be between 0 and 1 (exclusive)")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction={self.train_fraction}: use a fraction in (0, 1]")


# ---------------------------------------------------------------------------------------------
# Config: configs/base.yaml, then key=value overrides, both typed by the dataclass above.


def load_config(path: str | Path = BASE_CONFIG, overrides: Sequence[str] = ()) -> Config:
    """``Config`` from the YAML file at ``path``, then ``key=value`` overrides."""
    return tympan.config.load_config(Config, path, overrides)


# ---------------------------------------------------------------------------------------------
# Data: synthesize (or reuse) the corpus, hold out some utterances of every training speaker,
# compute features once, batch with padding.


def corpus_dir(cfg: Config) -> str:
    return cfg.corpus_dir or (f".tympan/corpora/{cfg.vocab}-v{cfg.voices}-u{cfg.per_speaker}"
                              f"-s{cfg.corpus_seed}")


def features(cfg: Config, wav: np.ndarray) -> torch.Tensor:
    """(frames, dims) features; by default only their per-utterance mean is removed, since
    speakers differ in the spread of their spectra too."""
    if cfg.front_end == "logmel":
        x = log_mel(wav, sr=SAMPLE_RATE, n_fft=400, hop_length=cfg.hop, n_mels=cfg.n_mels)
    else:
        x = mfcc(wav, sr=SAMPLE_RATE, n_mfcc=cfg.n_mfcc, n_fft=400, hop_length=cfg.hop,
                 n_mels=cfg.n_mels)
    x = x.T.float()
    if cfg.norm != "none":
        x = x - x.mean(0)
    if cfg.norm == "meanvar":
        x = x / (x.std(0) + 1e-5)
    return x


def batch_features(cfg: Config, waves: torch.Tensor, lengths: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``features`` of each clip of a zero-padded batch, in one STFT for the whole batch:
    (batch, frames, dims) zero-padded, and each clip's frames."""
    kw = {"sr": SAMPLE_RATE, "n_fft": 400, "hop_length": cfg.hop, "n_mels": cfg.n_mels,
          "lengths": lengths}
    x = log_mel(waves, **kw) if cfg.front_end == "logmel" else mfcc(waves, n_mfcc=cfg.n_mfcc, **kw)
    frames = stft_frames(lengths, n_fft=400, hop_length=cfg.hop)
    x = normalize_frames(x.transpose(1, 2).float(), frames, center=cfg.norm != "none",
                         scale=cfg.norm == "meanvar")
    return x, frames


@dataclass
class Split:
    utterances: list[Utterance]
    waves: list[np.ndarray]
    feats: list[torch.Tensor]
    labels: torch.Tensor  # index into the training speakers; -1 for a speaker never trained on


def split_heldout(cfg: Config, utterances: list[Utterance]) -> tuple[list[Utterance],
                                                                     list[Utterance]]:
    """(trained on, held out): ``cfg.heldout`` of each speaker's utterances, drawn from the
    seed, so every seed holds out the same ones however the corpus is ordered."""
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    held: set[str] = set()
    for speaker, utts in sorted(by_speaker.items()):
        paths = sorted(u.path for u in utts)
        rng = random.Random(f"heldout:{cfg.seed}:{speaker}")
        held.update(rng.sample(paths, max(1, round(len(paths) * cfg.heldout))))
    return ([u for u in utterances if u.path not in held],
            [u for u in utterances if u.path in held])


def prepare(cfg: Config, corpus: Corpus, utterances: list[Utterance],
            speakers: list[str]) -> Split:
    waves = [load(corpus.file(u), mono=True)[0] for u in utterances]
    index = {s: i for i, s in enumerate(speakers)}
    labels = torch.tensor([index.get(u.speaker, -1) for u in utterances])
    return Split(utterances, waves, [features(cfg, w) for w in waves], labels)


def load_data(cfg: Config) -> tuple[list[str], dict[str, Split]]:
    """The training speakers and the splits ``train``, ``heldout``, ``valid``, ``test``."""
    corpus = synth_corpus(corpus_dir(cfg), vocab=cfg.vocab, voices=cfg.voices,
                          utterances_per_speaker=cfg.per_speaker, seed=cfg.corpus_seed,
                          progress=sys.stderr.isatty())
    trained, heldout = split_heldout(cfg, corpus.split("train"))
    speakers = sorted({u.speaker for u in trained})
    # Learning curves: larger fractions hold every smaller one's utterances.
    trained = nested_subset(trained, cfg.train_fraction)
    parts = {"train": trained, "heldout": heldout, "valid": corpus.split("valid"),
             "test": corpus.split("test")}
    return speakers, {name: prepare(cfg, corpus, utts, speakers) for name, utts in parts.items()}


# ---------------------------------------------------------------------------------------------
# Model: TDNN frame layers (dilated 1-D convolutions), pooling over the valid frames, an
# embedding layer, and a classifier over the training speakers. Padding is zeroed after every
# frame layer, so an utterance gets the same embedding alone as in any batch.


class XVector(nn.Module):
    def __init__(self, cfg: Config, dims: int, n_speakers: int) -> None:
        super().__init__()
        self.pooling = cfg.pooling
        self.loss_kind = cfg.loss
        widths = [dims] + [cfg.channels] * len(FRAME_LAYERS)
        self.frames = nn.ModuleList(
            nn.Conv1d(w_in, w_out, k, dilation=d, padding=d * (k - 1) // 2)
            for (k, d), w_in, w_out in zip(FRAME_LAYERS, widths[:-1], widths[1:], strict=True))
        self.norms = nn.ModuleList(nn.BatchNorm1d(cfg.channels) for _ in FRAME_LAYERS)
        pooled = 2 * cfg.channels if cfg.pooling == "stats" else cfg.channels
        self.embed = nn.Linear(pooled, cfg.embedding)
        if cfg.loss == "softmax":
            self.head: nn.Module = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(cfg.embedding),
                                                 nn.Dropout(cfg.dropout),
                                                 nn.Linear(cfg.embedding, n_speakers))
        else:  # cosine classifier: logits are scale * cos(embedding, speaker weight)
            self.head = nn.Linear(cfg.embedding, n_speakers, bias=False)
            self.drop = nn.Dropout(cfg.dropout)
        self.scale = cfg.scale

    def embeddings(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, embedding) from (batch, frames, dims) features and their lengths."""
        valid = (torch.arange(x.shape[1]) < lengths[:, None])[:, None, :].to(x.dtype)
        h = x.transpose(1, 2)
        for conv, norm in zip(self.frames, self.norms, strict=True):
            h = norm(nn.functional.relu(conv(h))) * valid
        n = lengths[:, None].to(x.dtype)
        mean = h.sum(-1) / n
        if self.pooling == "mean":
            return self.embed(mean)
        var = ((h - mean[:, :, None]).square() * valid).sum(-1) / n
        return self.embed(torch.cat([mean, var.clamp(min=1e-5).sqrt()], dim=1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
        """(embeddings, speaker logits)."""
        emb = self.embeddings(x, lengths)
        if self.loss_kind == "softmax":
            return emb, self.head(emb)
        cos = nn.functional.linear(nn.functional.normalize(self.drop(emb), dim=1),
                                   nn.functional.normalize(self.head.weight, dim=1))
        return emb, self.scale * cos


def speaker_loss(cfg: Config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy; for am_softmax, the target's logit is first lowered by scale * margin."""
    if cfg.loss == "am_softmax":
        logits = logits - cfg.scale * cfg.margin * nn.functional.one_hot(labels, logits.shape[1])
    return nn.functional.cross_entropy(logits, labels)


# ---------------------------------------------------------------------------------------------
# Evaluation: identification by the classifier, verification by cosine scores of embeddings.


@torch.no_grad()
def embed(model: XVector, feats: list[torch.Tensor], batch_size: int = 64) -> tuple[
        torch.Tensor, torch.Tensor]:
    """(embeddings, logits) of every utterance, in order."""
    model.eval()
    outputs = [model(*pad_features(feats[i:i + batch_size]))
               for i in range(0, len(feats), batch_size)]
    return torch.cat([e for e, _ in outputs]), torch.cat([lg for _, lg in outputs])


def trials(embeddings: torch.Tensor, speakers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores and target labels (1: same speaker) of every pair of utterances."""
    unit = nn.functional.normalize(embeddings, dim=1)
    i, j = torch.triu_indices(len(speakers), len(speakers), offset=1)
    scores = (unit[i] * unit[j]).sum(1).numpy()
    names = np.array(speakers)
    return scores, (names[i.numpy()] == names[j.numpy()]).astype(np.int64)


def evaluate(cfg: Config, model: XVector, split: Split, name: str) -> tuple[dict[str, float],
                                                                           torch.Tensor]:
    """``{name}/eer`` and ``{name}/min_dcf`` over all pairs of ``split``'s utterances, and
    ``{name}/accuracy`` where its speakers were trained on; also the predicted speakers."""
    embeddings, logits = embed(model, split.feats)
    scores, labels = trials(embeddings, [u.speaker for u in split.utterances])
    result = {f"{name}/eer": eer(scores, labels).eer,
              f"{name}/min_dcf": min_dcf(scores, labels, p_target=cfg.p_target)}
    predicted = logits.argmax(1)
    if (split.labels >= 0).all():
        result[f"{name}/accuracy"] = (predicted == split.labels).float().mean().item()
    return result, predicted


# ---------------------------------------------------------------------------------------------
# Training


def train(cfg: Config) -> str:
    """Train and record one run; returns its id."""
    started = time.monotonic()
    cfg = replace(cfg, corpus_dir=corpus_dir(cfg))  # record where the corpus actually is
    tympan.seed_everything(cfg.seed)
    speakers, data = load_data(cfg)
    train_split = data["train"]
    model = XVector(cfg, dims=train_split.feats[0].shape[1], n_speakers=len(speakers))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_split.feats) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_schedule(
        cfg.schedule, cfg.warmup_steps, cfg.epochs * steps_per_epoch))

    run = tympan.init(project=cfg.project, config=asdict(cfg), store=cfg.store,
                      tags=["speaker", "xvector", cfg.pooling, cfg.loss, cfg.front_end])
    with run:
        # How much it learned from: the x axis of a learning curve (docs/quantify.md).
        run.log({"data/train_utterances": len(train_split.utterances),
                 "data/train_hours": sum(u.duration for u in train_split.utterances) / 3600})
        step = 0
        for epoch in range(cfg.epochs):
            model.train()
            correct = 0
            for i in torch.randperm(len(train_split.feats)).split(cfg.batch_size):
                if len(i) < 2:
                    continue  # BatchNorm cannot train on one utterance; it is in other epochs
                x, lengths = pad_features([train_split.feats[j] for j in i])
                y = train_split.labels[i]
                _, logits = model(x, lengths)
                loss = speaker_loss(cfg, logits, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                correct += (logits.argmax(1) == y).sum().item()
                run.log({"train/loss": loss, "lr": sched.get_last_lr()[0]}, step=step)
                sched.step()
                step += 1
            scores: dict[str, float] = {"epoch": epoch,
                                        "train/accuracy": correct / len(train_split.feats)}
            for name in ("heldout", "valid", "test"):
                result, predicted = evaluate(cfg, model, data[name], name)
                scores |= result
                if name == "heldout":
                    heldout_predicted = predicted
            run.log(scores, step=step)
            heldout = data["heldout"]
            for k in range(min(cfg.audio_samples, len(heldout.utterances))):
                at = k * len(heldout.utterances) // cfg.audio_samples  # different speakers
                run.log_audio(f"heldout/sample{k}", heldout.waves[at], SAMPLE_RATE, step=step,
                              caption=f"speaker: {heldout.utterances[at].speaker} | "
                                      f"predicted: {speakers[heldout_predicted[at]]}")
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {loss.item():.3f}  "
                  f"held-out accuracy {scores['heldout/accuracy']:.3f}  "
                  f"EER held-out {scores['heldout/eer']:.3f} valid {scores['valid/eer']:.3f} "
                  f"test {scores['test/eer']:.3f}  ({time.monotonic() - started:.0f} s)",
                  flush=True)
        # Weights + resolved config + speaker names + run id (whose record holds the git
        # commit, diff and packages): enough to rebuild exactly this model.
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "config": asdict(cfg), "speakers": speakers,
                    "run_id": run.id}, buffer)
        run.log_artifact(buffer.getvalue(), name="model.pt")
        run.log({"wall_seconds": time.monotonic() - started}, step=step)
    print(f"{run.name} ({run.id}): held-out accuracy {scores['heldout/accuracy']:.3f} "
          f"({len(speakers)} speakers), unseen speakers: test EER {scores['test/eer']:.3f} "
          f"minDCF {scores['test/min_dcf']:.3f}, valid EER {scores['valid/eer']:.3f} "
          f"minDCF {scores['valid/min_dcf']:.3f}")
    return run.id


# ---------------------------------------------------------------------------------------------
# Inference: what `tympan.models.load` (and serving) need to rebuild this recipe's model.


class SpeakerInference:
    """A trained XVector from its model.pt: padded waveforms -> features -> an embedding and
    the closest training speaker for each utterance."""

    sample_rate = SAMPLE_RATE

    def __init__(self, checkpoint: bytes) -> None:
        state = torch.load(io.BytesIO(checkpoint))
        self.cfg = Config(**state["config"])
        self.speakers: list[str] = list(state["speakers"])
        dims = self.cfg.n_mels if self.cfg.front_end == "logmel" else self.cfg.n_mfcc
        self.model = XVector(self.cfg, dims=dims, n_speakers=len(self.speakers))
        self.model.load_state_dict(state["model"])
        self.model.eval()

    def preprocess(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
        return batch_features(self.cfg, waves, lengths)

    def postprocess(self, outputs: tuple[torch.Tensor, torch.Tensor],
                    inputs: tuple[torch.Tensor, torch.Tensor]) -> list[dict[str, Any]]:
        embeddings, logits = outputs
        best = logits.softmax(1).max(1)
        return [{"embedding": e.tolist(), "speaker": self.speakers[i], "probability": p}
                for e, i, p in zip(embeddings, best.indices.tolist(), best.values.tolist(),
                                   strict=True)]

    def describe(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"front_end": cfg.front_end, "n_mels": cfg.n_mels,
                "n_mfcc": cfg.n_mfcc if cfg.front_end == "mfcc" else None, "n_fft": 400,
                "hop": cfg.hop, "normalization": cfg.norm, "embedding": cfg.embedding,
                "output": "embedding and the closest of the training speakers"}


def inference(checkpoint: bytes) -> SpeakerInference:
    """The registry's hook: a checkpoint's model, ready for inference (docs/registry.md)."""
    return SpeakerInference(checkpoint)


class SpeakerServing:
    """What ``tympan serve`` answers for each request: the utterance's embedding and the
    nearest enrolled speaker by cosine similarity. Speakers are enrolled from
    ``enroll=DIR``, one folder of clips per speaker (``DIR/alice/*.wav``), or over HTTP
    (``POST /v1/enroll/alice`` with the clips): a speaker's voiceprint is the mean of its
    clips' unit-length embeddings. Without enrollment the answer names the closest of the
    training speakers, with the classifier's probability."""

    AUDIO = (".wav", ".flac", ".ogg")

    def __init__(self, ready: SpeakerInference, enroll: str | None = None) -> None:
        self.ready = ready
        # (names, voiceprints), replaced whole so a batch being answered sees one or the other
        self.enrolled: tuple[list[str], torch.Tensor] = ([], torch.empty(0))
        if enroll is not None:
            self._enroll_folder(Path(enroll))

    def _enroll_folder(self, root: Path) -> None:
        if not root.is_dir():
            raise ConfigError(f"enroll={root}: not a folder (one sub-folder of clips per "
                              "speaker)")
        found = False
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            clips = [load(f, sample_rate=SAMPLE_RATE, mono=True)[0]
                     for f in sorted(folder.iterdir()) if f.suffix.lower() in self.AUDIO]
            if clips:
                with torch.inference_mode():
                    emb, _ = self.ready.model(*self.ready.preprocess(*pad_waves(clips)))
                self._add(folder.name, emb)
                found = True
        if not found:
            raise ConfigError(f"enroll={root}: no speaker folder with .wav, .flac or .ogg "
                              "clips in it")

    def _add(self, name: str, embeddings: torch.Tensor) -> None:
        voiceprint = nn.functional.normalize(
            nn.functional.normalize(embeddings, dim=1).mean(0), dim=0)
        names, prints = self.enrolled
        keep = [i for i, n in enumerate(names) if n != name]  # enrolling again replaces
        rows = [prints[i] for i in keep] + [voiceprint]
        self.enrolled = ([names[i] for i in keep] + [name], torch.stack(rows))

    def enroll(self, name: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /v1/enroll/NAME``: ``name``'s voiceprint from the answers to its clips
        (replacing an earlier one of that name)."""
        self._add(name, torch.tensor([a["embedding"] for a in answers]))
        return {"speaker": name, "clips": len(answers), "enrolled": list(self.enrolled[0])}

    def answer(self, outputs: tuple[torch.Tensor, torch.Tensor],
               inputs: tuple[torch.Tensor, torch.Tensor]) -> list[dict[str, Any]]:
        embeddings = outputs[0]
        names, prints = self.enrolled
        if not names:
            return [{"embedding": a["embedding"], "speaker": a["speaker"],
                     "probability": a["probability"], "enrolled": False}
                    for a in self.ready.postprocess(outputs, inputs)]
        similarity = nn.functional.normalize(embeddings, dim=1) @ prints.T
        best = similarity.max(1)
        return [{"embedding": e.tolist(), "speaker": names[i], "similarity": s,
                 "enrolled": True}
                for e, i, s in zip(embeddings, best.indices.tolist(), best.values.tolist(),
                                   strict=True)]


def serving(ready: SpeakerInference, enroll: str | None = None, **options: str
            ) -> SpeakerServing:
    """The serving hook (docs/serving.md): ``--option enroll=DIR`` enrolls speakers."""
    if options:
        raise ConfigError(f"speaker_id serving takes only enroll=DIR, got "
                          f"{', '.join(options)}")
    return SpeakerServing(ready, enroll)


def main(argv: Sequence[str] | None = None) -> None:
    cfg = tympan.config.parse_command_line(Config, BASE_CONFIG, argv, __doc__.splitlines()[0])
    if "OMP_NUM_THREADS" not in os.environ:  # a study runner sets it per trial
        torch.set_num_threads(2)
    train(cfg)


if __name__ == "__main__":
    main()
