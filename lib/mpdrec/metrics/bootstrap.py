"""Paired bootstrap intervals for the difference between two rankings scored on the same playlists.

A validation challenge of a few hundred playlists gives metric means whose noise is of the same
order as the differences between models; the per-playlist scores of two models are paired (same
playlists, same hidden tracks), so resampling the playlists and taking the mean difference each time
gives an interval for "A minus B" that accounts for how hard each playlist is.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def paired_difference(
    a: np.ndarray, b: np.ndarray, seed: int, resamples: int = RESAMPLES, level: float = LEVEL
) -> dict[str, float]:
    """Mean of a - b over the playlists and its percentile bootstrap interval at `level`.

    a[i] and b[i] are two models' scores of playlist i. Returns {"difference", "low", "high",
    "level", "playlists"}; the same seed gives the same interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equal, non-empty 1-D score arrays, got shapes {a.shape} and {b.shape}")
    diff = a - b
    picks = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return {
        "difference": float(diff.mean()),
        "low": float(low),
        "high": float(high),
        "level": level,
        "playlists": int(len(diff)),
    }


def mean_interval(a: np.ndarray, seed: int, resamples: int = RESAMPLES, level: float = LEVEL) -> dict[str, float]:
    """Mean of one model's per-query scores and its percentile bootstrap interval (the paired
    difference against zero)."""
    a = np.asarray(a, dtype=np.float64)
    out = paired_difference(a, np.zeros_like(a), seed, resamples, level)
    return {
        "mean": out["difference"],
        "low": out["low"],
        "high": out["high"],
        "level": level,
        "queries": out["playlists"],
    }
