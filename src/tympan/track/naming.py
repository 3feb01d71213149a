"""Run ids and default run names."""

from __future__ import annotations

import secrets

ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 10  # 36**10: collisions are negligible even across very large shared stores

_ADJECTIVES = ("brisk", "bright", "calm", "clear", "crisp", "deep", "dry", "fast", "gentle",
               "hushed", "keen", "low", "mellow", "quiet", "rapid", "resonant", "sharp", "soft",
               "steady", "warm", "wet", "wide", "bold", "vivid")
_NOUNS = ("formant", "phoneme", "cochlea", "timbre", "cadence", "chirp", "echo", "fricative",
          "harmonic", "lilt", "murmur", "octave", "pitch", "reverb", "sibilant", "spectrum",
          "tone", "vowel", "whisper", "glottis", "prosody", "onset", "plosive", "syllable")


def new_run_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def looks_like_id_prefix(text: str) -> bool:
    return 0 < len(text) <= ID_LENGTH and all(c in ID_ALPHABET for c in text)


def new_run_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"
