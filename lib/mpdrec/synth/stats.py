"""Statistics of a synthetic MPD: measured on what was written, and expected from the catalogue.

`expected_stats` predicts, from the catalogue alone (Poisson approximation), the unique counts N
playlists will show (the top-track share it cannot: draws within a playlist are correlated); it is
how the catalogue parameters were calibrated to the MPD's published full-scale figures without
writing 32 GB, and a test holds the calibration to those figures.
"""

from __future__ import annotations

import numpy as np

from mpdrec.synth.catalogue import Catalogue
from mpdrec.synth.playlists import HIT_SHARE, RUN_MEAN

# published figures of the real MPD (1,000 slices)
MPD_FULL = {
    "playlists": 1_000_000,
    "entries": 66_346_428,
    "unique_tracks": 2_262_292,
    "unique_albums": 734_684,
    "unique_artists": 295_860,
    "top_track_share": 0.0466,
    "singleton_track_share": 0.5,
    "mean_length": 66.35,
}


def track_probabilities(cat: Catalogue) -> np.ndarray:
    """Probability that one playlist entry is each track (before within-playlist de-duplication)."""
    offs = cat.artist_track_offset
    n = np.diff(offs).astype(np.float64)
    artist_p = np.zeros(len(n))
    for t, ids in enumerate(cat.theme_artists):
        w = cat.artist_weight[ids]
        artist_p[ids] = cat.theme_p[t] * w / w.sum()
    b = cat.params.track_beta
    e = 1.0 - b
    k = np.arange(cat.num_tracks) - np.repeat(offs[:-1], n.astype(np.int64))
    nn = np.repeat(n, n.astype(np.int64))
    denom = (nn + 1.0) ** e - 1.0
    q = (((k + 2.0) ** e - 1.0) / denom) - (((k + 1.0) ** e - 1.0) / denom)
    q[k == nn - 1] += 1.0 - (((nn[k == nn - 1] + 1.0) ** e - 1.0) / denom[k == nn - 1])
    p = (1 - HIT_SHARE) * np.repeat(artist_p, n.astype(np.int64)) * q
    hit_p = np.diff(np.concatenate([[0.0], cat.hit_cdf]))
    np.add.at(p, cat.hit_tracks, HIT_SHARE * hit_p)
    return p


def expected_stats(cat: Catalogue, num_playlists: int, mean_length: float = 66.35) -> dict[str, float]:
    """Expected unique counts and shares for `num_playlists` playlists sampled from `cat`."""
    entries = num_playlists * mean_length
    p = track_probabilities(cat)
    lam = entries * p
    seen = -np.expm1(-lam)
    unique_tracks = seen.sum()
    artists = cat.track_artist(np.arange(cat.num_tracks))
    artist_p = np.bincount(artists, weights=p)
    album_p = np.bincount(cat.track_album, weights=p)
    return {
        "playlists": num_playlists,
        "entries": entries,
        "unique_tracks": float(unique_tracks),
        "singleton_track_share": float((lam * np.exp(-lam)).sum() / unique_tracks),
        "unique_artists": float(-np.expm1(-(entries / RUN_MEAN) * artist_p).sum()),
        "unique_albums": float(-np.expm1(-(entries / 1.3) * album_p).sum()),
    }


def measured_stats(
    num_playlists: int,
    lengths: np.ndarray,
    track_playlist_counts: np.ndarray,
    num_artists: int,
    num_albums: int,
) -> dict[str, float]:
    """Summary a person can compare with the MPD's figures (printed by the generator)."""
    seen = track_playlist_counts[track_playlist_counts > 0]
    q = np.quantile(lengths, [0.05, 0.5, 0.95]) if len(lengths) else [0, 0, 0]
    return {
        "playlists": int(num_playlists),
        "entries": int(lengths.sum()),
        "unique_tracks": int(len(seen)),
        "unique_artists": int(num_artists),
        "unique_albums": int(num_albums),
        "length_min": int(lengths.min()) if len(lengths) else 0,
        "length_p05": float(q[0]),
        "length_median": float(q[1]),
        "length_p95": float(q[2]),
        "length_max": int(lengths.max()) if len(lengths) else 0,
        "length_mean": float(lengths.mean()) if len(lengths) else 0.0,
        "top_track_share": float(seen.max() / num_playlists) if len(seen) else 0.0,
        "singleton_track_share": float((seen == 1).mean()) if len(seen) else 0.0,
    }
