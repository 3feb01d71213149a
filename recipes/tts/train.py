"""Text to speech on CPU, recorded with tympan: espeak phonemes (or characters) -> log-mel ->
Griffin-Lim waveform, judged by MCD, F0 and an ASR model's ears, with alignment health watched.

One espeak-ng voice says digit strings ("four one nine"); the model learns that voice from
its phonemes (with the phoneme timings espeak recorded) or its characters. Components swap by
config: the text encoder (``encoder=conv|transformer``), the decoder (``decoder=location``:
autoregressive with location-sensitive attention and a stop token; ``content``: the same with
content-only attention; ``duration``: non-autoregressive, durations learned from the corpus's
phoneme timings), the reduction factor and a guided-attention loss. Every arm goes through
the same vocoder (``vocoder.py``: Griffin-Lim in torch ops; a neural one plugs in there).

Every run records per step the losses and the probe's statistics and health events (the
``attention_alignment`` rule, with the attention plot of the step it fired); per epoch the
held-out loss and an attention plot with its diagonality, focus rate and entropy; every
``eval_every`` epochs and at the end, for the held-out texts (never trained on): clips with
their text as caption (``four one nine · ASR heard: four one nine``), MCD against espeak's own
rendering (DTW), F0 RMSE and correlation, and the CER of an ASR judge (``judge=``, recorded
with its CER on the espeak originals); then the checkpoint.

    .venv/bin/tympan run recipes/asr_ctc                       # an ASR judge, if none yet
    .venv/bin/tympan run recipes/tts judge=RUN_ID              # configs/base.yaml
    .venv/bin/tympan run recipes/tts decoder=content judge=RUN_ID seed=1
    .venv/bin/tympan run recipes/tts decoder=duration encoder=transformer judge=RUN_ID
    .venv/bin/python -m recipes.tts.train judge=models:/asr-digits@champion
    .venv/bin/tympan ablate studies/tts_components_quick.yaml --workers 2   # make demo-tts

The first run synthesizes the corpus into ``.tympan/corpora/digits-v3-u160-s0`` (about
20 s). Figures (time per run, CER, MCD, diagonality per arm) are in docs/benchmarks.md.
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
from torch.nn import functional as F

import tympan
import tympan.config
import tympan.probe
from recipes.tts.data import (
    Batch,
    Example,
    Vocabulary,
    batches,
    collate,
    load_examples,
    speaker_utterances,
)
from recipes.tts.judge import Judge, load_judge
from recipes.tts.model import TTSModel
from recipes.tts.vocoder import VOCODERS, MelScale, Vocoder
from tympan.audio.corpus import synth_corpus
from tympan.audio.metrics import character_error_rate, f0_comparison, mcd_from_audio
from tympan.errors import ConfigError
from tympan.probe.attention import attention_stats

BASE_CONFIG = Path(__file__).parent / "configs" / "base.yaml"
SAMPLE_RATE = 16000  # the corpus is synthesized at 16 kHz


@dataclass(frozen=True)
class Config:
    project: str = "tts"  # tympan project the run is filed under
    # corpus
    voices: int = 3  # espeak-ng speakers synthesized (the fewest a corpus has)
    per_speaker: int = 160  # digit strings each speaker says
    corpus_seed: int = 0  # picks the speakers and the texts
    corpus_dir: str | None = None  # None: .tympan/corpora/digits-v{voices}-u{per_speaker}-s{seed}
    speaker: str | None = None  # the voice to learn; None: the corpus's first train speaker
    held_out: int = 16  # the speaker's last utterances: texts never trained on, judged
    # features
    n_mels: int = 80  # mel bands (40 smear the harmonics and Griffin-Lim loses the pitch)
    n_fft: int = 512  # STFT size: 32 ms at 16 kHz
    hop: int = 128  # samples between frames: 8 ms
    # model
    text: Literal["phonemes", "chars"] = "phonemes"  # espeak's phonemes or the letters
    encoder: Literal["conv", "transformer"] = "conv"  # the text encoder
    decoder: Literal["location", "content", "duration"] = "location"  # see the docstring
    width: int = 128  # encoder, attention RNN and decoder width
    reduction: int = 4  # mel frames per autoregressive decoder step
    dropout: float = 0.1  # in the encoder, the duration decoder and the postnet
    guided_attention: float = 1.0  # weight of the guided-attention loss (0: off)
    guided_sigma: float = 0.2  # its tolerance around the diagonal (Tachibana et al. 2018)
    max_frames_per_token: float = 20.0  # inference stops at this many frames per token
    # optimization
    lr: float = 2e-3  # Adam learning rate
    epochs: int = 30  # passes over the training texts
    batch_size: int = 16  # utterances per step
    grad_clip: float = 1.0  # gradient-norm clipping
    seed: int = 0  # model init, batch order and dropout
    # judging and recording
    vocoder: Literal["griffin_lim"] = "griffin_lim"  # see vocoder.py
    griffin_lim_iters: int = 32  # Griffin-Lim iterations
    judge: str | None = "models:/asr-digits@champion"  # ASR model (or asr_ctc run id); null: no CER
    eval_every: int = 10  # epochs between syntheses of the held-out texts (and the last one)
    audio_samples: int = 3  # held-out clips logged per evaluation
    align_threshold: float = 0.4  # mean diagonality under which alignment failed
    align_warmup: int = 150  # steps before the probe's alignment rule judges
    n_boot: int = 1000  # bootstrap resamples for the CER interval
    store: str | None = None  # tympan store; None: TYMPAN_STORE, else ./.tympan

    def __post_init__(self) -> None:
        small = [name for name in ("per_speaker", "held_out", "n_mels", "n_fft", "hop", "width",
                                   "reduction", "epochs", "batch_size", "eval_every",
                                   "griffin_lim_iters", "n_boot") if getattr(self, name) < 1]
        if small:
            raise ConfigError(f"{', '.join(small)} must be 1 or more")
        if self.decoder == "duration" and self.text != "phonemes":
            raise ConfigError("decoder=duration learns durations from espeak's phoneme timings: "
                              "it needs text=phonemes")
        if self.hop > self.n_fft:
            raise ConfigError(f"hop={self.hop} is longer than n_fft={self.n_fft}")
        if self.encoder == "transformer" and self.width % 2:
            raise ConfigError(f"width={self.width}: the transformer's 2 heads need an even width")


def load_config(path: str | Path = BASE_CONFIG, overrides: Sequence[str] = ()) -> Config:
    """``Config`` from the YAML file at ``path``, then ``key=value`` overrides."""
    return tympan.config.load_config(Config, path, overrides)


# ---------------------------------------------------------------------------------------------
# Data: the corpus, one speaker's utterances, normalized log-mel computed once.


def corpus_dir(cfg: Config) -> str:
    return cfg.corpus_dir or (f".tympan/corpora/digits-v{cfg.voices}-u{cfg.per_speaker}"
                              f"-s{cfg.corpus_seed}")


@dataclass
class Data:
    train: list[Example]
    held_out: list[Example]
    vocab: Vocabulary
    scale: MelScale


def prepare(cfg: Config) -> Data:
    corpus = synth_corpus(corpus_dir(cfg), vocab="digits", voices=cfg.voices,
                          utterances_per_speaker=cfg.per_speaker, seed=cfg.corpus_seed,
                          progress=sys.stderr.isatty())
    utts = speaker_utterances(corpus, cfg.speaker)
    if len(utts) <= cfg.held_out:
        raise ConfigError(f"held_out={cfg.held_out} leaves no training text: the speaker has "
                          f"{len(utts)} utterances (raise per_speaker)")
    train_utts, held_utts = utts[:-cfg.held_out], utts[-cfg.held_out:]
    scale = MelScale(SAMPLE_RATE, cfg.n_fft, cfg.hop, cfg.n_mels)
    from tympan.audio.io import load

    raw = [scale.log_mel(load(corpus.file(u), mono=True)[0]) for u in train_utts]
    frames = torch.cat(raw)
    scale.mean, scale.std = float(frames.mean()), float(frames.std())
    vocab = Vocabulary.build(cfg.text, train_utts)
    return Data(load_examples(train_utts, corpus, vocab, cfg.text, scale, raw),
                load_examples(held_utts, corpus, vocab, cfg.text, scale), vocab, scale)


# ---------------------------------------------------------------------------------------------
# Losses


def masked_l1(pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    t = min(pred.shape[1], target.shape[1])
    keep = (torch.arange(t)[None, :] < lengths[:, None]).float()[..., None]
    diff = (pred[:, :t] - target[:, :t]).abs() * keep
    return diff.sum() / (keep.sum() * pred.shape[-1])


def guided_attention(maps: list[torch.Tensor], sigma: float) -> torch.Tensor:
    """Attention mass far from the diagonal, weighted by 1 - exp(-(n/N - t/T)^2 /
    (2 sigma^2)) (Tachibana et al. 2018), per decoder step: pulls a fresh attention onto a
    monotonic path. Summed over tokens (not averaged, which would shrink it with the text's
    length), averaged over steps and utterances."""
    total = maps[0].new_zeros(())
    for a in maps:
        t, n = a.shape
        grid = (torch.arange(t)[:, None] / t - torch.arange(n)[None, :] / n) ** 2
        total = total + (a * (1 - torch.exp(-grid / (2 * sigma**2)))).sum(-1).mean()
    return total / len(maps)


def losses(cfg: Config, model: TTSModel, batch: Batch) -> tuple[dict[str, torch.Tensor],
                                                                 list[torch.Tensor]]:
    """The training losses of a batch (teacher-forced) and its alignment maps."""
    coarse, fine, maps, extra = model(batch.tokens, batch.token_lengths, batch.mel,
                                      batch.mel_lengths, batch.durations)
    out = {"mel": masked_l1(coarse, batch.mel, batch.mel_lengths)
           + masked_l1(fine, batch.mel, batch.mel_lengths)}
    if cfg.decoder == "duration":
        keep = batch.tokens != 0
        target = torch.log1p(batch.durations.float())
        out["duration"] = ((extra - target) ** 2 * keep).sum() / keep.sum()
    else:
        steps = -(-batch.mel_lengths // cfg.reduction)
        index = torch.arange(extra.shape[1])[None, :]
        keep = (index < steps[:, None]).float()
        stop = (index == steps[:, None] - 1).float()
        out["stop"] = (F.binary_cross_entropy_with_logits(extra, stop, reduction="none",
                                                          pos_weight=torch.tensor(5.0))
                       * keep).sum() / keep.sum()
        if cfg.guided_attention > 0:
            out["guided"] = cfg.guided_attention * guided_attention(maps, cfg.guided_sigma)
    out["total"] = sum(out.values())
    return out, maps


# ---------------------------------------------------------------------------------------------
# Synthesis and judging of the held-out texts


@dataclass
class Synthesis:
    waves: list[np.ndarray]
    maps: list[torch.Tensor]
    mels: list[torch.Tensor]
    unstopped: int  # utterances the autoregressive decoder never stopped


@torch.no_grad()
def synthesize(cfg: Config, model: TTSModel, examples: list[Example],
               vocoder: Vocoder) -> Synthesis:
    """Free-running synthesis (no reference frames, predicted durations or stop)."""
    model.eval()
    batch = collate(examples)
    max_steps = math.ceil(cfg.max_frames_per_token * int(batch.token_lengths.max())
                          / cfg.reduction)
    _, fine, maps, _ = model(batch.tokens, batch.token_lengths, max_steps=max_steps)
    model.train()
    r = 1 if cfg.decoder == "duration" else cfg.reduction
    mels = [fine[i, :maps[i].shape[0] * r] for i in range(len(examples))]
    unstopped = 0 if cfg.decoder == "duration" else sum(m.shape[0] >= max_steps for m in maps)
    return Synthesis([vocoder(m) for m in mels], maps, mels, unstopped)


def _finite_mean(values: list[float]) -> float:
    """Mean of the defined values (an unvoiced clip has no F0 RMSE); NaN when none is."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def alignment_image(alignment: torch.Tensor) -> np.ndarray:
    """An attention map as an image: decoder steps left to right, tokens bottom to top."""
    return alignment.detach().float().T.flip(0).clamp(0, 1).numpy()


def judge_references(cfg: Config, judge: Judge, data: Data, vocoder: Vocoder) -> dict[str, Any]:
    """The judge's CER on espeak's originals of the held-out texts, and on the same passed
    through the vocoder: the best a generated clip can hope for."""
    refs = [e.utterance.text for e in data.held_out]
    speakers = [e.utterance.speaker for e in data.held_out]
    out: dict[str, Any] = {"judge": cfg.judge, "judge_run": judge.run_id}
    for name, waves in (("original", [e.wave for e in data.held_out]),
                        ("vocoded", [vocoder(e.mel) for e in data.held_out])):
        report = character_error_rate(refs, judge.transcribe(waves), speakers, n_boot=cfg.n_boot,
                                      seed=cfg.seed)
        out[f"cer_{name}"] = report.rate
    return out


def evaluate(cfg: Config, model: TTSModel, data: Data, vocoder: Vocoder, judge: Judge | None,
             run: Any, step: int) -> dict[str, float]:
    """Synthesize the held-out texts, log clips and the alignment, return the scores."""
    synth = synthesize(cfg, model, data.held_out, vocoder)
    refs = data.held_out
    mcd = [mcd_from_audio(e.wave, w, SAMPLE_RATE) for e, w in zip(refs, synth.waves, strict=True)]
    pitch = [f0_comparison(e.wave, w, SAMPLE_RATE) for e, w in zip(refs, synth.waves, strict=True)]
    align = attention_stats(synth.maps)
    scores = {"test/mcd": float(np.mean(mcd)),
              "test/f0_rmse": _finite_mean([p.rmse_hz for p in pitch]),
              "test/f0_corr": _finite_mean([p.correlation for p in pitch]),
              "test/voicing_error": float(np.mean([p.voicing_error for p in pitch])),
              "test/diagonality": align["diagonality"], "test/focus": align["focus"],
              "test/entropy": align["entropy"],
              "test/unstopped": synth.unstopped / len(refs)}
    scores["test/align_fail"] = float(scores["test/diagonality"] < cfg.align_threshold
                                      or synth.unstopped > 0)
    heard = [""] * len(refs)
    per_utterance: dict[str, Any] = {"ids": [e.utterance.path for e in refs], "mcd": mcd}
    if judge is not None:
        heard = judge.transcribe(synth.waves)
        texts = [e.utterance.text for e in refs]
        report = character_error_rate(texts, heard, [e.utterance.speaker for e in refs],
                                      n_boot=cfg.n_boot, seed=cfg.seed)
        scores |= {"test/cer": report.rate, "test/cer_low": report.ci.low,
                   "test/cer_high": report.ci.high}
        per_utterance["cer"] = {"errors": [u.errors for u in report.utterances],
                                "counts": [u.reference_length for u in report.utterances]}
    run.log(scores, step=step)
    for k in range(min(cfg.audio_samples, len(refs))):
        caption = refs[k].utterance.text + (f" · ASR heard: {heard[k]}" if judge else "")
        run.log_audio(f"test/sample{k}", synth.waves[k], SAMPLE_RATE, step=step, caption=caption)
    run.log_image("test/alignment", alignment_image(synth.maps[0]), step=step,
                  caption=f"{refs[0].utterance.text}: diagonality {align['diagonality']:.2f}")
    run.log_artifact(json.dumps(per_utterance).encode(), name="test/utterances.json")
    return scores


# ---------------------------------------------------------------------------------------------
# Training


def train(cfg: Config) -> str:
    """Train and record one run; returns its id."""
    started = time.monotonic()
    cfg = replace(cfg, corpus_dir=corpus_dir(cfg))  # record where the corpus actually is
    tympan.seed_everything(cfg.seed)
    data = prepare(cfg)
    vocoder = VOCODERS[cfg.vocoder](data.scale, iterations=cfg.griffin_lim_iters)
    judge = load_judge(cfg.judge, cfg.store) if cfg.judge else None
    model = TTSModel(len(data.vocab.symbols), cfg.n_mels, cfg.encoder, cfg.decoder, cfg.width,
                     cfg.reduction, cfg.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    held_batch = collate(data.held_out)

    run = tympan.init(project=cfg.project, config=asdict(cfg), store=cfg.store,
                      tags=["tts", cfg.encoder, cfg.decoder, cfg.text])
    with run:
        if judge is not None:
            reference = judge_references(cfg, judge, data, vocoder)
            run.update_config({"judge_run": judge.run_id})
            run.log({"judge/cer_original": reference["cer_original"],
                     "judge/cer_vocoded": reference["cer_vocoded"]}, step=0)
            run.log_artifact(json.dumps(reference).encode(), name="judge.json")
        # The probe watches the decoder's alignment: a map per utterance and step.
        probe = tympan.probe.attach(
            model, run=run, layers=["encoder", "decoder", "postnet"], attention=["decoder"],
            rules={"attention_alignment": {"min_diagonality": cfg.align_threshold,
                                           "warmup": cfg.align_warmup}})
        step, scores = 0, {}
        for epoch in range(cfg.epochs):
            for batch in batches(data.train, cfg.batch_size, generator):
                with probe.batch(lengths=batch.token_lengths):
                    parts, maps = losses(cfg, model, batch)
                opt.zero_grad()
                parts["total"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                run.log({f"train/{k}": v for k, v in parts.items()}, step=step)
                for event in probe.step(step, loss=parts["total"].detach()):
                    if event.rule == "attention_alignment":
                        run.log_image("health/attention", alignment_image(maps[0]), step=step,
                                      caption=event.message)
                step += 1
            # Evaluation is not training: the probe's statistics and rules see training steps.
            with torch.no_grad(), probe.paused():
                model.eval()
                held, held_maps = losses(cfg, model, held_batch)
                model.train()
            stats = attention_stats(held_maps)
            run.log({"valid/loss": held["total"], "valid/mel": held["mel"], "epoch": epoch}
                    | {f"valid/{k}": v for k, v in stats.items()}, step=step)
            run.log_image("valid/alignment", alignment_image(held_maps[0]), step=step,
                          caption=f"epoch {epoch + 1}, teacher-forced: diagonality "
                                  f"{stats['diagonality']:.2f}, focus {stats['focus']:.2f}")
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                with probe.paused():
                    scores = evaluate(cfg, model, data, vocoder, judge, run, step)
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {parts['total'].item():.3f}  held-out "
                  f"{held['total'].item():.3f}  diagonality {stats['diagonality']:.2f}"
                  + "".join(f"  {k[5:]} {v:.3f}" for k, v in scores.items()
                            if (k in ("test/mcd", "test/cer") and epoch + 1 == cfg.epochs)
                            or ((epoch + 1) % cfg.eval_every == 0 and k in ("test/mcd",
                                                                           "test/cer")))
                  + f"  ({time.monotonic() - started:.0f} s)", flush=True)
        probe.save(run)
        probe.detach()
        # Weights + resolved config + vocabulary + mel statistics + run id (whose record
        # holds the git commit, diff and packages): enough to rebuild exactly this model.
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "config": asdict(cfg),
                    "symbols": data.vocab.symbols,
                    "mel_stats": [data.scale.mean, data.scale.std], "run_id": run.id}, buffer)
        run.log_artifact(buffer.getvalue(), name="model.pt")
        run.log({"wall_seconds": time.monotonic() - started}, step=step)
    print(f"{run.name} ({run.id}): " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return run.id


def main(argv: Sequence[str] | None = None) -> None:
    cfg = tympan.config.parse_command_line(Config, BASE_CONFIG, argv, __doc__.splitlines()[0])
    if "OMP_NUM_THREADS" not in os.environ:  # a study runner sets it per trial
        torch.set_num_threads(2)
    train(cfg)


if __name__ == "__main__":
    main()
