"""Sampling playlists from the catalogue, vectorised over a whole slice.

A playlist has a primary theme (and maybe a secondary one) and is filled with runs of tracks: a run
takes one artist of a theme (so neighbours share artists and albums), or a chart hit from any theme.
This gives collaborative filtering something real to learn, heavy-tailed popularity, and titles
that predict content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpdrec.synth.catalogue import Catalogue

MIN_LEN, MAX_LEN = 5, 250
LEN_MU, LEN_SIGMA = 3.985, 0.80  # log-normal lengths: MPD median ~49, mean ~66
RUN_MEAN = 1.7  # mean number of consecutive tracks by one artist
HIT_SHARE = 0.08  # share of runs that are chart hits rather than theme tracks
DUPLICATE_KEEP = 0.01  # share of repeated picks kept as duplicates (the MPD has a few)


@dataclass(frozen=True)
class PlaylistBatch:
    """Playlists as flat arrays: tracks of playlist i are tracks[offsets[i]:offsets[i+1]]."""

    offsets: np.ndarray  # int64 [n + 1]
    tracks: np.ndarray  # int64 [entries]
    primary_theme: np.ndarray  # int64 [n]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def sample_lengths(rng: np.random.Generator, n: int, min_len: int = MIN_LEN) -> np.ndarray:
    """Playlist lengths from the MPD-like distribution, conditioned on length >= min_len."""
    out = np.empty(0, dtype=np.int64)
    while len(out) < n:
        x = np.round(rng.lognormal(LEN_MU, LEN_SIGMA, 2 * (n - len(out)) + 16)).astype(np.int64)
        out = np.concatenate([out, x[(x >= max(min_len, MIN_LEN)) & (x <= MAX_LEN)]])
    return out[:n]


def _powerlaw_index(rng: np.random.Generator, n: np.ndarray, beta: float) -> np.ndarray:
    """Index k in [0, n) with P(k) ~ (k + 1) ** -beta (continuous inverse-CDF approximation)."""
    u = rng.random(len(n))
    e = 1.0 - beta
    x = (((n + 1.0) ** e - 1.0) * u + 1.0) ** (1.0 / e)
    return np.clip(np.floor(x).astype(np.int64) - 1, 0, n - 1)


def sample_playlists(cat: Catalogue, rng: np.random.Generator, lengths: np.ndarray) -> PlaylistBatch:
    """Sample one playlist per entry of `lengths`; duplicates are removed (except a few) before cut."""
    n = len(lengths)
    k = len(cat.theme_names)
    primary = rng.choice(k, size=n, p=cat.theme_p)
    secondary = rng.choice(k, size=n, p=cat.theme_p)
    focus = np.where(rng.random(n) < 0.35, 1.0, rng.beta(6.0, 2.0, n))

    slots = np.ceil(lengths * 1.5).astype(np.int64) + 6
    slot_pl = np.repeat(np.arange(n), slots)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(slots, out=starts[1:])
    new_run = rng.random(len(slot_pl)) < 1.0 / RUN_MEAN
    new_run[starts[:-1]] = True
    run_of_slot = np.cumsum(new_run) - 1
    run_pl = slot_pl[new_run]
    n_runs = len(run_pl)

    u = rng.random(n_runs)
    is_hit = u < HIT_SHARE
    from_primary = u < HIT_SHARE + (1 - HIT_SHARE) * focus[run_pl]
    run_theme = np.where(from_primary, primary[run_pl], secondary[run_pl])
    run_artist = np.zeros(n_runs, dtype=np.int64)
    au = rng.random(n_runs)
    for t in range(k):
        sel = np.flatnonzero((run_theme == t) & ~is_hit)
        if len(sel):
            run_artist[sel] = cat.theme_artists[t][np.searchsorted(cat.theme_artist_cdf[t], au[sel])]

    slot_artist = run_artist[run_of_slot]
    offs = cat.artist_track_offset
    k_idx = _powerlaw_index(rng, offs[slot_artist + 1] - offs[slot_artist], cat.params.track_beta)
    tracks = offs[slot_artist] + k_idx
    slot_hit = is_hit[run_of_slot]
    hit_pick = np.searchsorted(cat.hit_cdf, rng.random(int(slot_hit.sum())))
    tracks[slot_hit] = cat.hit_tracks[hit_pick]

    # drop repeats within a playlist (keep the first, and a few repeats as the MPD has), then cut
    key = slot_pl * np.int64(cat.num_tracks) + tracks
    _, first_idx = np.unique(key, return_index=True)
    keep = np.zeros(len(key), dtype=bool)
    keep[first_idx] = True
    keep |= rng.random(len(key)) < DUPLICATE_KEEP
    kept_pl = slot_pl[keep]
    rank = np.arange(len(kept_pl)) - np.searchsorted(kept_pl, kept_pl, side="left")
    final = rank < lengths[kept_pl]
    out_tracks = tracks[keep][final]
    counts = np.bincount(kept_pl[final], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return PlaylistBatch(offsets=offsets, tracks=out_tracks, primary_theme=primary)
