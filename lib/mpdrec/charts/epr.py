"""Expected percentile ranking (Hu, Koren and Volinsky 2008), the study's evaluator.

For each country the songs are ranked by score; a song's percentile is its place among the ranked
songs, 0 at the top and 1 at the bottom. EPR = sum(r' x percentile) / sum(r') over the held-out
(country, song) entries: 0 ranks every streamed song first, 0.5 is random. On the training matrix
every song is ranked; on validation the country's training songs are left out of the ranking (the
model was fitted to them), so a held-out song competes with the songs the country did not stream.
"""

from __future__ import annotations

import numpy as np


def expected_percentile_rank(scores: np.ndarray, held: np.ndarray, exclude: np.ndarray | None = None) -> float:
    """EPR of `scores` (countries x songs) on the weights `held`; `exclude`: entries not ranked."""
    num, den = 0.0, 0.0
    for i in range(scores.shape[0]):
        ranked = np.ones(scores.shape[1], dtype=bool) if exclude is None else ~exclude[i]
        ranked |= held[i] > 0
        idx = np.flatnonzero(ranked)
        if len(idx) < 2 or not np.any(held[i, idx] > 0):
            continue
        order = idx[np.argsort(-scores[i, idx], kind="stable")]
        pct = np.empty(scores.shape[1])
        pct[order] = np.arange(len(order)) / (len(order) - 1)
        num += float(np.sum(held[i, idx] * pct[idx]))
        den += float(np.sum(held[i, idx]))
    return num / den if den else float("nan")
