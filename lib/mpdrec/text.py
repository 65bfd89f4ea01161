"""Playlist title normalisation, shared by ingest (name_norm) and the title model.

Lowercase (Unicode case folding after NFKC), drop punctuation, symbols and emoji, collapse white
space: "Chill Vibes ✌️" -> "chill vibes", "90's" -> "90s", "R&B" -> "rb".
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache


@lru_cache(maxsize=65_536)
def normalize_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold()
    kept = "".join(ch if unicodedata.category(ch)[0] in "LN" else " " if ch.isspace() else "" for ch in text)
    return " ".join(kept.split())
