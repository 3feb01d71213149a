"""What the registry tests share: a tiny synthesized corpus and ASR recipe runs that log a
real checkpoint (an untrained CTCModel: registering and loading do not need a good model).

    corpus = tiny_corpus(tmp_path_factory)                  # synthesized once per session
    run_id = asr_run(store, corpus, wer=0.2)                # a finished run with model.pt
"""

from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path

import pytest

import tympan

REPO = Path(__file__).resolve().parents[1]
TINY = {"hidden": 32, "layers": 1, "voices": 3, "per_speaker": 3}


def tiny_corpus(factory: pytest.TempPathFactory) -> Path:
    from tympan.audio.corpus import synth_corpus

    root = factory.getbasetemp() / "registry-corpus"  # one per session, reused by modules
    synth_corpus(root, voices=3, utterances_per_speaker=3, progress=False)
    return root


def asr_run(store: str, corpus: Path, wer: float = 0.2, seed: int = 0, finish: bool = True,
            project: str = "asr-ctc", **config: object):
    """A recipe run holding model.pt and test metrics with 95% bounds; returns the Run."""
    import torch
    from recipes.asr_ctc.train import ALPHABET, Config, CTCModel

    cfg = Config(**{**TINY, "corpus_dir": str(corpus), "seed": seed, "project": project,
                    **config})
    torch.manual_seed(seed)
    model = CTCModel(cfg, dims=cfg.n_mels)
    run = tympan.init(project=project, config=asdict(cfg), store=store,
                      tags=["asr", cfg.encoder])
    run.log({"train/loss": 2.0}, step=0)
    run.log({"test/wer": wer, "test/wer_low": wer - 0.05, "test/wer_high": wer + 0.05,
             "valid/wer": wer + 0.01, "valid/wer_low": wer - 0.04,
             "valid/wer_high": wer + 0.06, "test/cer": wer / 2}, step=1)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "config": asdict(cfg), "alphabet": ALPHABET,
                "run_id": run.id}, buffer)
    run.log_artifact(buffer.getvalue(), name="model.pt")
    if finish:
        run.finish()
    return run
