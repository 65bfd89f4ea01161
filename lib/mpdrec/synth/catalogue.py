"""The population the synthetic MPD is sampled from: themes -> artists -> albums -> tracks.

The catalogue is defined at full MPD scale whatever the number of slices written, and a run of N
slices samples N x 1,000 playlists from it. So the statistics of a small run are those of a random
sample of the real MPD (about 34k unique tracks in one slice, not 2.26M / 1,000), and those of a
1,000-slice run approach the published figures. Track identity is implicit (an integer); names and
URIs are pure functions of (seed, id), so any slice can be written without the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mpdrec.hashing import splitmix64
from mpdrec.synth import vocab

_BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


@dataclass(frozen=True)
class CatalogueParams:
    """Shape of the population; calibrated (see `mpdrec.synth.stats`) to the MPD's published figures."""

    num_artists: int = 450_000
    artist_offset: float = 350.0  # artist weight = (rank + offset) ** -artist_alpha
    artist_alpha: float = 1.7
    tracks_per_artist_mu: float = 3.15  # log-normal number of tracks per artist (plus one)
    tracks_per_artist_sigma: float = 1.1
    track_beta: float = 1.05  # within an artist, track k has weight (k + 1) ** -track_beta
    mean_album_size: float = 6.5
    num_hits: int = 3_000  # cross-theme hits pool (chart songs found in every kind of playlist)
    hit_alpha: float = 0.9
    hit_offset: float = 200.0


@dataclass(frozen=True)
class Catalogue:
    """Arrays describing every artist and track of the population (indexed by integer id)."""

    seed: int
    params: CatalogueParams
    theme_names: tuple[str, ...]
    theme_p: np.ndarray  # probability that a run of tracks comes from each theme
    artist_theme: np.ndarray  # int16 [num_artists]
    artist_weight: np.ndarray  # float64 [num_artists]
    artist_track_offset: np.ndarray  # int64 [num_artists + 1]; tracks of artist a: offset[a]..offset[a+1]
    theme_artists: tuple[np.ndarray, ...]  # per theme: artist ids
    theme_artist_cdf: tuple[np.ndarray, ...]  # per theme: cumulative artist weights, last = 1
    track_album: np.ndarray  # int32 [num_tracks]
    track_duration_ms: np.ndarray  # int32 [num_tracks]
    hit_tracks: np.ndarray  # int64 [num_hits]
    hit_cdf: np.ndarray

    @property
    def num_tracks(self) -> int:
        return int(self.artist_track_offset[-1])

    def track_artist(self, tracks: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.artist_track_offset, tracks, side="right") - 1


def _keyed_hash(seed: int, salt: int, ids: np.ndarray) -> np.ndarray:
    key = splitmix64(np.array([seed * 1_000_003 + salt], dtype=np.uint64))[0]
    return splitmix64(ids.astype(np.uint64) ^ key)


def spotify_ids(seed: int, salt: int, ids: np.ndarray) -> list[str]:
    """22-character base62 ids, like Spotify's, unique per (seed, salt, id) for practical purposes."""
    h1 = _keyed_hash(seed, salt, ids)
    h2 = splitmix64(h1 ^ np.uint64(salt))
    digits = np.empty((len(ids), 22), dtype=np.uint8)
    for half, h in enumerate((h1, h2)):
        h = h.copy()
        for j in range(11):
            digits[:, half * 11 + j] = _BASE62[(h % np.uint64(62)).astype(np.int64)]
            h //= np.uint64(62)
    return [s.decode() for s in digits.view("S22").ravel()]


def _pick(words: tuple[str, ...], h: np.ndarray, shift: int) -> np.ndarray:
    return np.asarray(words, dtype=object)[((h >> np.uint64(shift)) % np.uint64(len(words))).astype(np.int64)]


def artist_names(seed: int, artists: np.ndarray) -> list[str]:
    h = _keyed_hash(seed, 11, artists)
    style = (h % np.uint64(4)).astype(np.int64)
    first, last = _pick(vocab.FIRST_NAMES, h, 8), _pick(vocab.LAST_NAMES, h, 16)
    adj, noun = _pick(vocab.ADJECTIVES, h, 24), _pick(vocab.NOUNS, h, 32)
    out = []
    for s, f, surname, a, n, a_id in zip(style, first, last, adj, noun, artists):
        if s == 0:
            out.append(f"{f} {surname}")
        elif s == 1:
            out.append(f"The {a} {n}s")
        elif s == 2:
            out.append(f"{a} {n}")
        else:
            out.append(f"{f} {surname} & The {n}s" if a_id % 7 == 0 else f"{surname}")
    return out


def album_names(seed: int, albums: np.ndarray) -> list[str]:
    h = _keyed_hash(seed, 13, albums)
    adj, noun = _pick(vocab.ADJECTIVES, h, 8), _pick(vocab.NOUNS, h, 16)
    deluxe = (h >> np.uint64(40)) % np.uint64(9) == 0
    return [f"{a} {n}{' (Deluxe Edition)' if d else ''}" for a, n, d in zip(adj, noun, deluxe)]


def track_names(seed: int, tracks: np.ndarray) -> list[str]:
    h = _keyed_hash(seed, 17, tracks)
    adj, noun = _pick(vocab.ADJECTIVES, h, 8), _pick(vocab.NOUNS, h, 16)
    suffix = _pick(vocab.TRACK_SUFFIXES, h, 24)
    feat = _pick(vocab.FIRST_NAMES, h, 32)
    short = (h >> np.uint64(48)) % np.uint64(3) == 0
    return [(n if s_ else f"{a} {n}") + suf.format(feat=f) for a, n, suf, f, s_ in zip(adj, noun, suffix, feat, short)]


@lru_cache(maxsize=4)
def build_catalogue(seed: int, params: CatalogueParams = CatalogueParams()) -> Catalogue:
    """Build the population deterministically from `seed` (about a second; cached per process)."""
    rng = np.random.default_rng([seed, 0xCA7A])
    theme_names = tuple(vocab.THEMES)
    k = len(theme_names)
    theme_w = (np.arange(k) + 3.0) ** -0.9
    theme_p = theme_w / theme_w.sum()
    theme_p = theme_p[rng.permutation(k)]

    n_art = params.num_artists
    artist_weight = (np.arange(n_art) + params.artist_offset) ** -params.artist_alpha
    artist_theme = rng.choice(k, size=n_art, p=theme_p).astype(np.int16)
    ntracks = 1 + np.floor(rng.lognormal(params.tracks_per_artist_mu, params.tracks_per_artist_sigma, n_art))
    ntracks = np.minimum(ntracks, 400).astype(np.int64)
    offsets = np.zeros(n_art + 1, dtype=np.int64)
    np.cumsum(ntracks, out=offsets[1:])
    num_tracks = int(offsets[-1])

    theme_artists, theme_cdf = [], []
    for t in range(k):
        ids = np.flatnonzero(artist_theme == t)
        cdf = np.cumsum(artist_weight[ids])
        theme_artists.append(ids)
        theme_cdf.append(cdf / cdf[-1])

    # albums: contiguous runs of an artist's tracks; an artist's first track always opens an album
    starts = rng.random(num_tracks) < 1.0 / params.mean_album_size
    starts[offsets[:-1]] = True
    track_album = (np.cumsum(starts) - 1).astype(np.int32)
    duration = np.clip(rng.normal(226_000, 52_000, num_tracks), 30_000, 1_200_000).astype(np.int32)

    # the hits pool: the top track of the most popular artists, across all themes
    hit_artists = np.arange(params.num_hits)
    hit_tracks = offsets[hit_artists] + (rng.random(params.num_hits) < 0.3)  # top or second track
    hit_w = (np.arange(params.num_hits) + params.hit_offset) ** -params.hit_alpha
    return Catalogue(
        seed=seed,
        params=params,
        theme_names=theme_names,
        theme_p=theme_p,
        artist_theme=artist_theme,
        artist_weight=artist_weight,
        artist_track_offset=offsets,
        theme_artists=tuple(theme_artists),
        theme_artist_cdf=tuple(theme_cdf),
        track_album=track_album,
        track_duration_ms=duration,
        hit_tracks=hit_tracks.astype(np.int64),
        hit_cdf=np.cumsum(hit_w) / hit_w.sum(),
    )
