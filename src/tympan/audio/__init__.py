"""Audio for speech ML: file IO, features, VAD, metrics, augmentation, synthesis, corpora.

- ``tympan.audio.io``: load/save WAV, FLAC, OGG; resample, mono mixdown, normalization, trim
  (numpy, soundfile, scipy).
- ``tympan.audio.features``: STFT, mel, log-mel and MFCC on torch ops, matching librosa
  (the only submodule that needs torch).
- ``tympan.audio.vad``: speech segments with silero-vad (its model ships in its wheel) or an
  energy detector; ``trim_silence``.
- ``tympan.audio.metrics``: WER/CER with bootstrap CIs, EER/minDCF, MCD and F0 with DTW,
  SI-SDR.
- ``tympan.audio.pitch``: F0 tracking (YIN) with a voicing decision.
- ``tympan.audio.augment``: noise at an exact SNR (white, pink, babble), synthetic-RIR reverb,
  speed perturbation, clipping, band-limiting; deterministic under a seed.
- ``tympan.audio.synth``, ``tympan.audio.corpus``: offline speech synthesis and corpora.

Standalone layer: it never imports ``tympan.store`` or ``tympan.track``. Importing this
package loads no submodule, so it costs nothing; import the one you need.
"""
