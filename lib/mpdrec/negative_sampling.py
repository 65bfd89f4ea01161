"""Negative draws for the neural models: k tracks per training positive, from popularity ** beta (beta 0:
uniform over all tracks), never one of the playlist's positives.

Used by the NCF input pipeline, which draws a fresh set every epoch while it trains, against the
positives jobs/sample_negatives.py wrote (`mpdrec.models.ncf.data`). Draws are counter-based hashes of
(seed, epoch, playlist, draw, round), so a playlist's negatives depend on nothing else: not on the
number of ranks, the order rows are read in, or a resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mpdrec.hashing import uniform

MAX_ROUNDS = 64  # redraw rounds before a playlist is declared impossible to sample


def sampling_cdf(counts: np.ndarray, beta: float) -> np.ndarray:
    """Cumulative sampling distribution over track ids 0..T-1 from per-track counts."""
    weights = np.where(counts > 0, counts.astype(np.float64), 0.0) ** beta if beta else np.ones(len(counts))
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def pair_keys(playlists: np.ndarray, tracks: np.ndarray, num_tracks: int) -> np.ndarray:
    """One int64 per (playlist, track): playlist * num_tracks + track (sortable, searchable)."""
    return playlists.astype(np.int64) * np.int64(num_tracks) + tracks.astype(np.int64)


def _taken(keys: np.ndarray, sorted_sets: Sequence[np.ndarray]) -> np.ndarray:
    hit = np.zeros(len(keys), dtype=bool)
    for taken in sorted_sets:
        if len(taken):
            at = np.minimum(np.searchsorted(taken, keys), len(taken) - 1)
            hit |= taken[at] == keys
    return hit


def draw_negatives(
    playlists: np.ndarray, draws: np.ndarray, taken: Sequence[np.ndarray], cdf: np.ndarray, seed: int, epoch: int
) -> np.ndarray:
    """One track per (playlist, draw) pair, none of them a positive.

    `taken` are sorted `pair_keys` arrays that together hold every positive of these playlists (the
    held-out leave-one-out tracks included); a draw that hits one is redrawn with the next round's key.
    `draws` must be distinct within a playlist (they key the hash).
    """
    n_tracks = len(cdf)
    pl = playlists.astype(np.int64)
    tracks = np.empty(len(pl), dtype=np.int64)
    todo = np.arange(len(pl))
    for rnd in range(MAX_ROUNDS):
        u = uniform(seed, epoch, pl[todo], draws[todo], rnd)
        tracks[todo] = np.minimum(np.searchsorted(cdf, u, side="right"), n_tracks - 1)
        todo = todo[_taken(pair_keys(pl[todo], tracks[todo], n_tracks), taken)]
        if not len(todo):
            return tracks
    raise ValueError(
        f"playlists {sorted(set(pl[todo].tolist()))[:5]} could not be given negatives: "
        "their positives cover (almost) all sampled tracks"
    )
