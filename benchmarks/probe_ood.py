"""Out-of-distribution inputs: tympan's probe vs output-only baselines, same model, same data.

Trains the CTC ASR recipe's model (conv encoder; or loads one with --run), fits a probe
profile on clean speech of the test speakers, and scores held-out clean utterances against
shifted versions of the same utterances: white noise at 0 and 5 dB SNR, babble at 5 dB,
hard clipping, 1.5x speed, Korean speech (a language the model never heard) and non-speech
noise. For the probe's combined anomaly p-value and for three output-only baselines (mean
max-softmax probability over frames, energy score, CTC blank ratio), prints AUROC and the
false-positive rate at 95% true-positive rate per shift; the fraction of clean held-out
inputs flagged at alpha = 0.01 (calibration); and which layer the probe names first for
each shift.

    .venv/bin/python benchmarks/probe_ood.py [--epochs 12] [--run RUN_ID --store STORE]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
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
from tympan.audio.corpus import synth_corpus  # noqa: E402
from tympan.audio.features import pad_features  # noqa: E402
from tympan.audio.io import load  # noqa: E402

SR = asr.SAMPLE_RATE
BLANK = asr.BLANK


def auroc(clean: np.ndarray, shifted: np.ndarray) -> float:
    """P(score of a shifted input > score of a clean one), ties half (Mann-Whitney)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([clean, shifted]))
    n0, n1 = len(clean), len(shifted)
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def fpr_at_95_tpr(clean: np.ndarray, shifted: np.ndarray) -> float:
    threshold = np.quantile(shifted, 0.05)  # 95% of shifted inputs score at least this
    return float(np.mean(clean >= threshold))


def model_and_config(args: argparse.Namespace) -> tuple[asr.CTCModel, asr.Config]:
    if args.run:
        record = tympan.load_run(args.run, store=args.store)
        checkpoint = torch.load(io.BytesIO(record.read_artifact("model.pt")))
        cfg = asr.Config(**checkpoint["config"])
    else:
        store = str(Path(tempfile.mkdtemp(prefix="tympan-probe-ood-")) / "store")
        cfg = replace(asr.Config(), epochs=args.epochs, store=store, audio_samples=0,
                      n_boot=200)
        run_id = asr.train(cfg)
        record = tympan.load_run(run_id, store=store)
        checkpoint = torch.load(io.BytesIO(record.read_artifact("model.pt")))
        cfg = asr.Config(**checkpoint["config"])
    corpus = synth_corpus(cfg.corpus_dir or asr.corpus_dir(cfg), vocab="digits",
                          voices=cfg.voices, utterances_per_speaker=cfg.per_speaker,
                          seed=cfg.corpus_seed, progress=False)
    dims = cfg.n_mels if cfg.front_end == "logmel" else cfg.n_mfcc
    model = asr.CTCModel(cfg, dims=dims)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    return model, replace(cfg, corpus_dir=str(corpus.root))


def shifted_sets(clean: list[np.ndarray], babble: list[np.ndarray],
                 korean: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        "white 0 dB": [add_noise(w, 0, "white", rng=rng) for w in clean],
        "white 5 dB": [add_noise(w, 5, "white", rng=rng) for w in clean],
        "babble 5 dB": [add_noise(w, 5, "babble", rng=rng, babble_sources=babble, sr=SR)
                        for w in clean],
        "clipping": [clip(w, 0.05) for w in clean],
        "speed 1.5x": [speed_perturb(w, SR, 1.5) for w in clean],
        "Korean speech": korean,
        "non-speech noise": [(0.1 * pink_noise(len(w), rng)).astype(np.float32)
                             for w in clean],
    }


@torch.no_grad()
def output_scores(model: asr.CTCModel, feats: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """Per input: -MSP (low confidence = OOD), energy (-logsumexp of logits), and the blank
    ratio's distance from the clean median (set later)."""
    logits_seen: list[torch.Tensor] = []
    hook = model.out.register_forward_hook(lambda m, i, o: logits_seen.append(o))
    msp, energy, blank = [], [], []
    for i in range(0, len(feats), 32):
        x, lengths = pad_features(feats[i:i + 32])
        log_probs = model(x, lengths)
        logits = logits_seen.pop()
        out_len = model.out_lengths(lengths)
        for b, n in enumerate(out_len.tolist()):
            lp, lg = log_probs[b, :n], logits[b, :n]
            msp.append(-float(lp.exp().max(-1).values.mean()))
            energy.append(-float(torch.logsumexp(lg, -1).mean()))
            blank.append(float((lp.argmax(-1) == BLANK).float().mean()))
    hook.remove()
    return {"max softmax prob": np.array(msp), "energy": np.array(energy),
            "CTC blank ratio": np.array(blank)}


def probe_scores(profile, model: asr.CTCModel,
                 feats: list[torch.Tensor]) -> tuple[np.ndarray, list[str | None]]:
    """Per input: -log10 of the combined anomaly p-value, and the first divergent layer."""
    scores, firsts = [], []
    for i in range(0, len(feats), 32):
        x, lengths = pad_features(feats[i:i + 32])
        report = profile.score(model, (x, lengths))
        scores += list(-np.log10(np.maximum(report.p_value, 1e-300)))
        firsts += list(report.first_divergent_layer)
    return np.array(scores), firsts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (no --run)")
    parser.add_argument("--run", help="use this asr_ctc run's model.pt instead of training")
    parser.add_argument("--store", help="the store holding --run")
    args = parser.parse_args()
    torch.manual_seed(0)
    out = Console()
    from tympan.probe.profile import fit

    model, cfg = model_and_config(args)
    corpus = synth_corpus(cfg.corpus_dir, vocab="digits", voices=cfg.voices,
                          utterances_per_speaker=cfg.per_speaker, seed=cfg.corpus_seed,
                          progress=False)
    test = [load(corpus.file(u), mono=True)[0] for u in corpus.split("test")]
    order = np.random.default_rng(0).permutation(len(test))
    cut = int(0.6 * len(test))
    reference = [test[i] for i in order[:cut]]  # profile fit + conformal calibration
    clean = [test[i] for i in order[cut:]]  # held out: never seen by the profile
    babble = [load(corpus.file(u), mono=True)[0] for u in corpus.split("train")[:40]]
    korean_corpus = synth_corpus(Path(cfg.corpus_dir).parent / "digits-ko-probe", "digits",
                                 voices=12, langs=["ko"], utterances_per_speaker=6, seed=1,
                                 progress=False)
    korean = [load(korean_corpus.file(u), mono=True)[0] for u in korean_corpus.utterances]
    korean = korean[:len(clean)]

    def feats(waves: list[np.ndarray]) -> list[torch.Tensor]:
        return [asr.features(cfg, w.astype(np.float32)) for w in waves]

    ref_feats = feats(reference)
    loader = [pad_features(ref_feats[i:i + 32]) for i in range(0, len(ref_feats), 32)]
    profile = fit(model, loader, calibration=0.4, seed=0)
    clean_feats = feats(clean)
    sets = {name: feats(waves) for name, waves in shifted_sets(clean, babble, korean).items()}

    clean_probe = probe_scores(profile, model, clean_feats)[0]
    clean_out = output_scores(model, clean_feats)
    blank_median = float(np.median(clean_out["CTC blank ratio"]))
    clean_out["CTC blank ratio"] = np.abs(clean_out["CTC blank ratio"] - blank_median)
    methods = ["tympan probe", *clean_out]
    results: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in methods}
    first_layers: dict[str, dict[str, int]] = {}
    for name, shifted in sets.items():
        probe_s, firsts = probe_scores(profile, model, shifted)
        results["tympan probe"][name] = (auroc(clean_probe, probe_s),
                                         fpr_at_95_tpr(clean_probe, probe_s))
        outs = output_scores(model, shifted)
        outs["CTC blank ratio"] = np.abs(outs["CTC blank ratio"] - blank_median)
        for method, scores in outs.items():
            results[method][name] = (auroc(clean_out[method], scores),
                                     fpr_at_95_tpr(clean_out[method], scores))
        counts: dict[str, int] = {}
        for layer in firsts:
            counts[layer or "none"] = counts.get(layer or "none", 0) + 1
        first_layers[name] = counts

    table = Table(title=f"AUROC / FPR@95%TPR: {len(clean)} clean held-out inputs vs each "
                        "shifted set", title_justify="left")
    table.add_column("shift")
    for m in methods:
        table.add_column(m, justify="right")
    for name in sets:
        table.add_row(name, *(f"{results[m][name][0]:.3f} / {results[m][name][1]:.2f}"
                              for m in methods))
    means = {m: float(np.mean([v[0] for v in results[m].values()])) for m in methods}
    table.add_row("mean AUROC", *(f"{means[m]:.3f}" for m in methods), style="bold")
    out.print(table)
    best_baseline = max(means[m] for m in methods[1:])
    out.print(f"probe mean AUROC {means['tympan probe']:.3f}; best output-only baseline "
              f"{best_baseline:.3f}; margin {100 * (means['tympan probe'] - best_baseline):+.1f}"
              " points")
    clean_p = 10 ** (-clean_probe)
    out.print(f"calibration: {np.mean(clean_p < 0.01):.1%} of clean held-out inputs flagged at "
              f"alpha = 0.01, {np.mean(clean_p < 0.05):.1%} at 0.05 (n = {len(clean)})")
    layers = Table(title="first divergent layer named by the probe (count of inputs)",
                   title_justify="left")
    layers.add_column("shift")
    layers.add_column("first divergent layer")
    for name, counts in first_layers.items():
        layers.add_row(name, ", ".join(f"{k}: {v}" for k, v in
                                       sorted(counts.items(), key=lambda kv: -kv[1])))
    out.print(layers)


if __name__ == "__main__":
    main()
