"""Speech metrics, one module per family; numpy/scipy (jiwer for error rates), torch optional.

- ``wer``: corpus word / character error rates with utterance and speaker bootstrap CIs.
- ``verification``: equal error rate and normalized minimum DCF.
- ``mcd``: mel cepstral distortion with DTW alignment.
- ``pitch``: F0 RMSE, correlation and voicing error with DTW alignment.
- ``separation``: scale-invariant SDR.

Standalone: nothing here imports ``tympan.store`` or ``tympan.track``.
"""

from __future__ import annotations

from tympan.audio.metrics.mcd import mcd_from_audio, mel_cepstral_distortion, mel_cepstrum
from tympan.audio.metrics.pitch import PitchComparison, f0_comparison
from tympan.audio.metrics.separation import si_sdr
from tympan.audio.metrics.verification import EERResult, eer, min_dcf
from tympan.audio.metrics.wer import (
    ConfidenceInterval,
    ErrorRateReport,
    UtteranceErrors,
    character_error_rate,
    word_error_rate,
)

__all__ = [
    "ConfidenceInterval",
    "EERResult",
    "ErrorRateReport",
    "PitchComparison",
    "UtteranceErrors",
    "character_error_rate",
    "eer",
    "f0_comparison",
    "mcd_from_audio",
    "mel_cepstral_distortion",
    "mel_cepstrum",
    "min_dcf",
    "si_sdr",
    "word_error_rate",
]
