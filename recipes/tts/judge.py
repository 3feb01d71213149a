"""The ASR judge: intelligibility as the character error rate of a trained recognizer.

The judge is named by the ``judge`` config key: a registered model
(``models:/asr-digits@champion``, ``models:/asr-digits/3``) or the id of a run of
``recipes/asr_ctc`` (its ``model.pt``). Which run it is gets recorded with every TTS run,
together with its CER on the espeak originals of the judged texts (what the judge can do at
best) and on the originals passed through the vocoder (what the vocoder leaves of it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import tympan
from tympan.audio.features import pad_waves
from tympan.errors import ConfigError, TympanError


class Judge:
    """``transcribe(waves)`` -> the judge's transcripts; ``run_id``: whose weights."""

    def __init__(self, ref: str, run_id: str, predict: Any) -> None:
        self.ref, self.run_id, self._predict = ref, run_id, predict

    @torch.no_grad()
    def transcribe(self, waves: list[np.ndarray]) -> list[str]:
        return list(self._predict([np.asarray(w, dtype=np.float32) for w in waves]))


def load_judge(ref: str, store: str | None) -> Judge:
    """The ASR model ``ref`` names (see the module docstring)."""
    try:
        if ref.startswith("models:/"):
            loaded = tympan.models.load(ref, store=store)
            return Judge(ref, loaded.version.run_id, loaded.predict)
        record = tympan.load_run(ref, store=store)
        checkpoint = record.read_artifact("model.pt")
    except TympanError as exc:
        raise ConfigError(f"judge={ref!r}: {exc}. Train an ASR judge first "
                          "(tympan run recipes/asr_ctc) and pass judge=RUN_ID, or "
                          "judge=null to skip the CER") from None
    from recipes.asr_ctc.train import inference  # the ASR recipe's own registry hook

    asr = inference(checkpoint)

    def predict(waves: list[np.ndarray]) -> list[str]:
        inputs = asr.preprocess(*pad_waves(waves))
        return asr.postprocess(asr.model(*inputs), inputs)

    return Judge(ref, record.id, predict)
