"""Run ids: the one format every layer checks (settings, storage, reads)."""

from __future__ import annotations

ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 10  # 36**10: collisions are negligible even across very large shared stores


def looks_like_id_prefix(text: str) -> bool:
    return 0 < len(text) <= ID_LENGTH and all(c in ID_ALPHABET for c in text)
