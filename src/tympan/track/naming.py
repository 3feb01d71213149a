"""Run ids and default run names."""

from __future__ import annotations

import secrets

from tympan.ids import ID_ALPHABET, ID_LENGTH

_ADJECTIVES = ("brisk", "bright", "calm", "clear", "crisp", "deep", "dry", "fast", "gentle",
               "hushed", "keen", "low", "mellow", "quiet", "rapid", "resonant", "sharp", "soft",
               "steady", "warm", "wet", "wide", "bold", "vivid")
_NOUNS = ("formant", "phoneme", "cochlea", "timbre", "cadence", "chirp", "echo", "fricative",
          "harmonic", "lilt", "murmur", "octave", "pitch", "reverb", "sibilant", "spectrum",
          "tone", "vowel", "whisper", "glottis", "prosody", "onset", "plosive", "syllable")


def new_run_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def new_run_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"
