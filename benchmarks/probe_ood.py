"""Out-of-distribution inputs: tympan's probe vs output-only baselines, same model, same data.

Trains the CTC ASR recipe's model (conv encoder by default; or loads one with --run) and
synthesizes, with espeak-ng, many more digit strings spoken by the corpus's two *test*
speakers (voices the model never heard). The probe's profile is fitted on part of that clean
speech (half of it held out for conformal calibration); the rest is held out to measure
calibration and as the clean side of every AUROC. Shifted copies of the held-out utterances:

- required rows (the issue): white noise at 0 and 5 dB SNR, babble at 5 dB, hard clipping at
  5% of the peak, 1.5x speed, Korean digits said by the same two voices (an unseen language,
  nothing else changed), non-speech pink noise;
- milder rows, where output-only scores weaken: white 10, 20 and 30 dB, babble 15 and 25 dB,
  clipping at 30% and 50% of the peak, speed 1.15x, 0.85x and 1.05x;
- a control that should *not* be detected: the same utterances 6 dB quieter (the recipe
  normalizes each utterance's features, so the model cannot see loudness);
- held-out shift families (issue 12, added after the detector was designed, none used to
  choose or weight anything): language (German and Spanish digits by the same voices, next
  to Korean), child-like speech (espeak pitch 95 with formants raised 20% by resampling),
  telephone band (300-3400 Hz, 8 kHz round trip), non-speech (pink noise above, a tone sweep,
  near silence), vocabulary (English sentences, not digits: the model is confidently wrong),
  and reverberation with its tail kept (RT60 0.8 s).

For each detector of the probe (the default, Mahalanobis with Ledoit-Wolf shrinkage on pooled
mean+std features; on mean features only; k-nearest-neighbour distances) and three
output-only baselines (mean max-softmax probability over frames, energy score, CTC blank
ratio's distance from the clean median): AUROC and the false-positive rate at 95% true
positive rate per shift. The probe ranks inputs by ``AnomalyReport.anomaly_score`` (the
combined score: the largest calibrated z of any layer, and with the output head (row
"combined") of any output score too); flags use its conformal p-value.
Then: the fraction of clean held-out inputs flagged at alpha = 0.01 and 0.05, for this
split and averaged over 10 other fit/calibration splits; the first divergent layer the probe names
per shift, and how often it agrees with the layer where the shift was expected (fixed below,
before measuring).

    .venv/bin/python benchmarks/probe_ood.py [--epochs 12] [--encoder conv|gru|transformer]
        [--run RUN_ID --store STORE] [--per-speaker 400] [--held-out 300]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# benchmarks/logging.py would shadow the stdlib `logging`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recipes/

import numpy as np  # noqa: E402
import torch  # noqa: E402
from recipes.asr_ctc import train as asr  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import tympan  # noqa: E402
from tympan.audio.augment import add_noise, clip, speed_perturb  # noqa: E402
from tympan.audio.augment.noise import pink_noise  # noqa: E402
from tympan.audio.corpus import Speaker, synth_corpus  # noqa: E402
from tympan.audio.features import pad_features  # noqa: E402
from tympan.audio.io import load  # noqa: E402
from tympan.audio.synth import synthesize  # noqa: E402
from tympan.probe.features import OUTPUT_KEY, FeatureCapture, OutputHead  # noqa: E402
from tympan.probe.profile import Profile, fit_features  # noqa: E402

SR = asr.SAMPLE_RATE
BLANK = asr.BLANK
HEAD = OutputHead("out", blank=BLANK)
COMBINED = "combined: layers + output (default)"
REQUIRED = ["white 0 dB", "white 5 dB", "babble 5 dB", "clipping 5%", "speed 1.5x",
            "Korean speech", "non-speech noise"]
FAMILIES = {  # held-out shift family -> its shifts (issue 12, item 4)
    "language": ["Korean speech", "German digits", "Spanish digits"],
    "child-like": ["child-like speech"],
    "telephone": ["telephone band"],
    "non-speech": ["non-speech noise", "tone sweep", "near silence"],
    "vocabulary": ["English sentences"],
    "room": ["reverb 0.8 s, tail kept"],
}
HELD_OUT = [s for names in FAMILIES.values() for s in names if s not in REQUIRED]
MILD = ["white 10 dB", "white 20 dB", "white 30 dB", "babble 15 dB", "babble 25 dB",
        "clipping 30%", "clipping 50%", "speed 1.15x", "speed 0.85x", "speed 1.05x"]
CONTROL = ["6 dB quieter"]
# Where each shift enters the model, fixed before measuring: every change to the waveform
# reaches the first probed layer (the front end, the conv subsampler), except a new language
# said by the same voices, whose difference we expected to show in the encoder first.
FRONT_END = "subsample"


CONTENT = ("Korean speech", "German digits", "Spanish digits", "English sentences")


def expected_layers(shift: str, layers: list[str]) -> set[str]:
    if shift in CONTENT:  # same voices, other words: the encoder or the output
        return {name for name in layers if name.startswith("encoder")} | {"out", "output"}
    return {FRONT_END}
DETECTORS = {  # label -> fit_features keyword arguments
    COMBINED: {"head": HEAD},
    "mahalanobis mean+std (layers only)": {},
    "mahalanobis mean": {"pooling": "mean"},
    "knn k=1 euclidean": {"detector": "knn", "detector_options": {"k": 1}},
    "knn k=10 cosine": {"detector": "knn",
                        "detector_options": {"k": 10, "metric": "cosine"}},
}
DIGITS = {"en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                 "nine"),
          "ko": ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"),
          "de": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht",
                 "neun"),
          "es": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho",
                 "nueve")}
SENTENCES = ("the quick brown fox jumps over the lazy dog", "she sells sea shells by the shore",
             "a cup of hot tea warms the cold hands", "the train leaves the station at noon",
             "please close the window before it rains", "my brother reads a book every week",
             "the river runs quietly under the old bridge", "turn left at the traffic light")


def auroc(clean: np.ndarray, shifted: np.ndarray) -> float:
    """P(score of a shifted input > score of a clean one), ties half (Mann-Whitney)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([clean, shifted]))
    n0, n1 = len(clean), len(shifted)
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def fpr_at_95_tpr(clean: np.ndarray, shifted: np.ndarray) -> float:
    threshold = np.quantile(shifted, 0.05)  # 95% of shifted inputs score at least this
    return float(np.mean(clean >= threshold))


def model_and_config(args: argparse.Namespace) -> tuple[asr.CTCModel, asr.Config, str]:
    if args.run:
        record = tympan.load_run(args.run, store=args.store)
    else:
        store = str(Path(tempfile.mkdtemp(prefix="tympan-probe-ood-")) / "store")
        cfg = replace(asr.Config(), epochs=args.epochs, encoder=args.encoder, store=store,
                      audio_samples=0, n_boot=200)
        record = tympan.load_run(asr.train(cfg), store=store)
    checkpoint = torch.load(io.BytesIO(record.read_artifact("model.pt")))
    cfg = asr.Config(**checkpoint["config"])
    dims = cfg.n_mels if cfg.front_end == "logmel" else cfg.n_mfcc
    model = asr.CTCModel(cfg, dims=dims)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    wer = record.summary.get("test/wer")
    what = f"{cfg.encoder} encoder, {cfg.epochs} epochs" + (
        f", test WER {wer.last:.3f}" if wer is not None and wer.last is not None else "")
    return model, cfg, what


def say(speakers: list[Speaker], lang: str, per_speaker: int, seed: int,
        texts: tuple[str, ...] | None = None, pitch: int | None = None) -> list[np.ndarray]:
    """``per_speaker`` strings of 3 to 5 digits in ``lang`` (or of ``texts``) by each
    speaker's voice (at ``pitch`` instead of its own)."""
    rng = np.random.default_rng(seed)
    words = DIGITS[lang]
    waves = []
    for s in speakers:
        for _ in range(per_speaker):
            text = (texts[int(rng.integers(len(texts)))] if texts else
                    " ".join(words[i] for i in rng.integers(0, 10, rng.integers(3, 6))))
            waves.append(synthesize(text, lang, variant=s.variant, rate=s.rate,
                                    pitch=s.pitch if pitch is None else pitch,
                                    sample_rate=SR).waveform)
    return waves


def telephone(w: np.ndarray) -> np.ndarray:
    from tympan.audio.augment import band_limit
    from tympan.audio.io import resample

    narrow = band_limit(w, SR, 300.0, 3400.0)
    return resample(resample(narrow, SR, 8000), 8000, SR).astype(np.float32)


def reverb_with_tail(w: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import fftconvolve

    from tympan.audio.augment.reverb import synthetic_rir

    wet = fftconvolve(w, synthetic_rir(SR, rt60, rng))  # the full tail, not cut
    return (wet * np.sqrt(np.mean(w**2)) / max(np.sqrt(np.mean(wet**2)), 1e-12)).astype(
        np.float32)


def shifted_sets(clean: list[np.ndarray], babble: list[np.ndarray],
                 spoken: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)

    def noise(snr: float, kind: str) -> list[np.ndarray]:
        extra = {"babble_sources": babble, "sr": SR} if kind == "babble" else {}
        return [add_noise(w, snr, kind, rng=rng, **extra) for w in clean]

    return {
        "white 0 dB": noise(0, "white"), "white 5 dB": noise(5, "white"),
        "babble 5 dB": noise(5, "babble"), "clipping 5%": [clip(w, 0.05) for w in clean],
        "speed 1.5x": [speed_perturb(w, SR, 1.5) for w in clean],
        "Korean speech": spoken["ko"],
        "non-speech noise": [(0.1 * pink_noise(len(w), rng)).astype(np.float32)
                             for w in clean],
        "white 10 dB": noise(10, "white"), "white 20 dB": noise(20, "white"),
        "white 30 dB": noise(30, "white"), "babble 15 dB": noise(15, "babble"),
        "babble 25 dB": noise(25, "babble"), "clipping 30%": [clip(w, 0.3) for w in clean],
        "clipping 50%": [clip(w, 0.5) for w in clean],
        "speed 1.15x": [speed_perturb(w, SR, 1.15) for w in clean],
        "speed 0.85x": [speed_perturb(w, SR, 0.85) for w in clean],
        "speed 1.05x": [speed_perturb(w, SR, 1.05) for w in clean],
        "6 dB quieter": [0.5 * w for w in clean],
        "German digits": spoken["de"], "Spanish digits": spoken["es"],
        "child-like speech": [speed_perturb(w, SR, 1.2) for w in spoken["child"]],
        "telephone band": [telephone(w) for w in clean],
        "tone sweep": [(0.3 * np.sin(2 * np.pi * (f0 * t + 1500 * t ** 2))).astype(np.float32)
                       for f0, t in ((rng.uniform(100, 800), np.arange(len(w)) / SR)
                                     for w in clean)],
        "near silence": [(1e-4 * rng.standard_normal(len(w))).astype(np.float32) for w in clean],
        "English sentences": spoken["sentences"],
        "reverb 0.8 s, tail kept": [reverb_with_tail(w, 0.8, rng) for w in clean],
    }


class Measured:
    """One model's pooled features and output-only scores, from one forward pass per batch."""

    def __init__(self, model: asr.CTCModel, cfg: asr.Config) -> None:
        self.model, self.cfg = model, cfg

    @torch.no_grad()
    def __call__(self, waves: list[np.ndarray]) -> tuple[dict[str, np.ndarray],
                                                          dict[str, np.ndarray]]:
        """{layer: pooled features} and, per input, -MSP (low confidence = OOD), energy
        (-logsumexp of the logits) and the CTC blank ratio (its distance from the clean
        median is taken later)."""
        feats = [asr.features(self.cfg, w.astype(np.float32)) for w in waves]
        seen: list[torch.Tensor] = []
        hook = self.model.out.register_forward_hook(lambda m, i, o: seen.append(o))
        parts: dict[str, list[np.ndarray]] = {}
        msp, energy, blank = [], [], []
        try:
            with FeatureCapture(self.model, head=HEAD) as capture:
                for f in feats:  # one at a time: nothing padded, as the probe runs them
                    x, lengths = pad_features([f])
                    for name, values in capture.capture((x, lengths)).items():
                        parts.setdefault(name, []).append(values)
                    logits = seen.pop()[0]
                    log_probs = logits.log_softmax(-1)
                    msp.append(-float(log_probs.exp().max(-1).values.mean()))
                    energy.append(-float(torch.logsumexp(logits, -1).mean()))
                    blank.append(float((log_probs.argmax(-1) == BLANK).float().mean()))
        finally:
            hook.remove()
        return ({name: np.concatenate(values) for name, values in parts.items()},
                {"max softmax prob": np.array(msp), "energy": np.array(energy),
                 "CTC blank ratio": np.array(blank)})


def cell(result: tuple[float, float]) -> str:
    return f"{result[0]:.3f} / {result[1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (no --run)")
    parser.add_argument("--encoder", default="conv", choices=["conv", "gru", "transformer"],
                        help="encoder to train (no --run)")
    parser.add_argument("--run", help="use this asr_ctc run's model.pt instead of training")
    parser.add_argument("--store", help="the store holding --run")
    parser.add_argument("--per-speaker", type=int, default=400,
                        help="extra clean utterances synthesized per test speaker")
    parser.add_argument("--held-out", type=int, default=300,
                        help="clean inputs held out from the profile (the clean side)")
    parser.add_argument("--splits", type=int, default=10,
                        help="fit/calibration splits averaged for the calibration check")
    args = parser.parse_args()
    started = time.monotonic()
    torch.manual_seed(0)
    out = Console(width=150)

    model, cfg, what = model_and_config(args)
    torch.set_num_threads(1)  # thousands of one-input passes: threads only add overhead
    corpus = synth_corpus(cfg.corpus_dir or asr.corpus_dir(cfg), vocab="digits",
                          voices=cfg.voices, utterances_per_speaker=cfg.per_speaker,
                          seed=cfg.corpus_seed, progress=False)
    trained_at = time.monotonic()
    speakers = [s for s in corpus.speakers if s.split == "test"]
    clean_all = [load(corpus.file(u), mono=True)[0] for u in corpus.split("test")]
    clean_all += say(speakers, "en", args.per_speaker, seed=1)
    order = np.random.default_rng(0).permutation(len(clean_all))
    held = args.held_out
    reference = [clean_all[i] for i in order[held:]]  # profile fit + conformal calibration
    clean = [clean_all[i] for i in order[:held]]  # held out: never seen by the profile
    babble = [load(corpus.file(u), mono=True)[0] for u in corpus.split("train")[:40]]
    per = -(-held // len(speakers))
    spoken = {lang: say(speakers, lang, per, seed=2 + i)[:held]
              for i, lang in enumerate(("ko", "de", "es"))}
    spoken["child"] = say(speakers, "en", per, seed=5, pitch=95)[:held]
    spoken["sentences"] = say(speakers, "en", per, seed=6, texts=SENTENCES)[:held]
    sets = shifted_sets(clean, babble, spoken)

    measure = Measured(model, cfg)
    ref_feats = measure(reference)[0]
    clean_feats, clean_out = measure(clean)
    set_feats, set_out = {}, {}
    for name, waves in sets.items():
        set_feats[name], set_out[name] = measure(waves)
    blank_median = float(np.median(clean_out["CTC blank ratio"]))
    for scores in (clean_out, *set_out.values()):
        scores["CTC blank ratio"] = np.abs(scores["CTC blank ratio"] - blank_median)
    modules = dict(model.named_modules())
    layer_names = [n for n in ref_feats if n != OUTPUT_KEY]
    kinds = {n: type(modules[n]).__name__ for n in layer_names}

    profiles: dict[str, Profile] = {}
    fit_seconds: dict[str, float] = {}
    for label, kw in DETECTORS.items():
        t = time.monotonic()
        profiles[label] = fit_features(ref_feats, kinds, calibration=0.5, seed=0, **kw)
        fit_seconds[label] = time.monotonic() - t
    default = next(iter(DETECTORS))
    results: dict[str, dict[str, tuple[float, float]]] = {}
    clean_reports = {label: p.score_features(clean_feats) for label, p in profiles.items()}
    shifted_reports = {}
    for label, profile in profiles.items():
        results[label] = {}
        for name in sets:
            report = profile.score_features(set_feats[name])
            if label == default:
                shifted_reports[name] = report
            a, b = clean_reports[label].anomaly_score, report.anomaly_score
            results[label][name] = (auroc(a, b), fpr_at_95_tpr(a, b))
    ties = "default, ranked by -log p only"
    results[ties] = {}
    for name in sets:
        a = -np.log(clean_reports[default].p_value)
        b = -np.log(shifted_reports[name].p_value)
        results[ties][name] = (auroc(a, b), fpr_at_95_tpr(a, b))
    for method in clean_out:
        results[method] = {name: (auroc(clean_out[method], set_out[name][method]),
                                  fpr_at_95_tpr(clean_out[method], set_out[name][method]))
                           for name in sets}
    baselines = list(clean_out)
    scored_at = time.monotonic()

    n_cal = profiles[default].n_calibration
    out.print(f"model: {what}; layers probed: {', '.join(layer_names)}")
    out.print(f"reference: {len(reference)} clean utterances of the {len(speakers)} test "
              f"speakers ({profiles[default].meta['n_fit']} fit + {n_cal} calibration); "
              f"{held} clean held out; {held} per shifted set")
    show = [default, "mahalanobis mean+std (layers only)", *baselines]
    table = Table(title="AUROC / FPR@95%TPR per shift (clean held-out vs shifted copies)",
                  title_justify="left")
    table.add_column("shift")
    for m in show:
        table.add_column(m, justify="right")
    means: dict[str, dict[str, float]] = {}
    groups = (("required", REQUIRED), ("held-out families", HELD_OUT), ("mild", MILD),
              ("control", CONTROL))
    for group, names in groups:
        for name in names:
            table.add_row(name, *(cell(results[m][name]) for m in show))
        means[group] = {m: float(np.mean([results[m][n][0] for n in names])) for m in results}
        table.add_row(f"mean AUROC, {group}", *(f"{means[group][m]:.3f}" for m in show),
                      style="bold", end_section=True)
    out.print(table)
    for group, names in groups[:3]:
        best = max(baselines, key=lambda m: means[group][m])
        probe = means[group][default]
        fpr = {m: float(np.mean([results[m][n][1] for n in names])) for m in (default, best)}
        out.print(f"{group}: probe mean AUROC {probe:.4f}; best output-only baseline {best} "
                  f"{means[group][best]:.4f}; difference "
                  f"{100 * (probe - means[group][best]):+.2f} points; mean FPR@95%TPR "
                  f"{fpr[default]:.3f} vs {fpr[best]:.3f}")

    families = Table(title="per shift family (issue 12 target: combined >= best output-only "
                           "- 0.01 on every family, mean >= 0.97): mean AUROC",
                     title_justify="left")
    for col in ("family", "shifts", COMBINED, "layers only", *baselines, "best output-only",
                "combined - best", "target met"):
        families.add_column(col, justify="left" if col in ("family", "shifts") else "right")
    family_means = []
    for family, names in FAMILIES.items():
        mean = {m: float(np.mean([results[m][n][0] for n in names])) for m in results}
        best = max(baselines, key=lambda m: mean[m])
        family_means.append(mean[default])
        families.add_row(family, ", ".join(names), f"{mean[default]:.3f}",
                         f"{mean['mahalanobis mean+std (layers only)']:.3f}",
                         *(f"{mean[m]:.3f}" for m in baselines), best,
                         f"{mean[default] - mean[best]:+.3f}",
                         "yes" if mean[default] >= mean[best] - 0.01 else "NO")
    out.print(families)
    out.print(f"combined detector: mean AUROC over the {len(FAMILIES)} families "
              f"{np.mean(family_means):.3f}; over every shift but the control "
              f"{np.mean([results[default][n][0] for n in REQUIRED + HELD_OUT + MILD]):.3f}")

    detectors = Table(title="probe detectors (mean AUROC; clean held-out flagged)",
                      title_justify="left")
    for col in ("detector", "required", "held-out families", "mild", "control",
                "flagged @0.01", "flagged @0.05", "fit s"):
        detectors.add_column(col, justify="left" if col == "detector" else "right")
    for label in [*DETECTORS, ties]:
        rep = clean_reports.get(label, clean_reports[default])
        detectors.add_row(label, *(f"{means[g][label]:.3f}" for g in (
                              "required", "held-out families", "mild", "control")),
                          f"{rep.flagged(0.01).mean():.1%}", f"{rep.flagged(0.05).mean():.1%}",
                          f"{fit_seconds.get(label, 0.0):.2f}")
    out.print(detectors)

    rates = []
    for seed in range(1, args.splits + 1):
        rep = fit_features(ref_feats, kinds, calibration=0.5, seed=seed,
                           head=HEAD).score_features(clean_feats)
        rates.append((rep.flagged(0.01).mean(), rep.flagged(0.05).mean()))
    r = np.array(rates)
    out.print(f"calibration (default detector, {n_cal} calibration inputs, min p = "
              f"{1 / (n_cal + 1):.4f}): clean held-out flagged at alpha = 0.01: "
              f"{clean_reports[default].flagged(0.01).mean():.1%} (split 0), "
              f"{r[:, 0].mean():.2%} mean over {args.splits} more splits (max {r[:, 0].max():.1%});"
              f" at 0.05: {clean_reports[default].flagged(0.05).mean():.1%}, mean "
              f"{r[:, 1].mean():.2%}")

    layers = Table(title="where the divergence enters, flagged inputs at alpha = 0.01 (combined "
                         "detector; largest z rise; the step-down first divergent layer "
                         "for comparison)", title_justify="left")
    for col in ("shift", "expected", "flagged", "enters at (count)", "agrees",
                "first divergent agrees", "median z by stage"):
        layers.add_column(col)
    agree_all = []
    for name in REQUIRED + HELD_OUT + MILD:
        report = shifted_reports[name]
        named = [x for x in report.entry_layer if x is not None]
        counts: dict[str, int] = {}
        for layer in named:
            counts[layer] = counts.get(layer, 0) + 1
        expected = expected_layers(name, layer_names)
        agree = float(np.mean([x in expected for x in named])) if named else float("nan")
        firsts = [x for x in report.first_divergent_layer if x is not None]
        first_agree = float(np.mean([x in expected for x in firsts])) if firsts else float("nan")
        agree_all.append((name, agree, len(named), first_agree))
        median_z = np.median(np.minimum(report.profile, 1e3), axis=0)
        layers.add_row(name, "/".join(sorted(expected)),
                       f"{report.flagged(0.01).mean():.0%}",
                       ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(),
                                                                 key=lambda kv: -kv[1])),
                       f"{agree:.0%}", f"{first_agree:.0%}",
                       " ".join(f"{z:.1f}" for z in median_z))
    out.print(layers)
    out.print(f"stages: {', '.join(shifted_reports[REQUIRED[0]].stages)}")
    for group, names in (("required", REQUIRED), ("held-out families", HELD_OUT),
                         ("mild", MILD)):
        rows = [(a, f) for n, a, k, f in agree_all if n in names and k]
        out.print(f"agreement with the expected stage, {group} (mean over shifts with a "
                  f"flagged input): entry layer {np.nanmean([a for a, _ in rows]):.0%}, "
                  f"step-down first divergent layer {np.nanmean([f for _, f in rows]):.0%}")
    out.print(f"time: model {trained_at - started:.0f} s, data + scoring "
              f"{scored_at - trained_at:.0f} s, total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
