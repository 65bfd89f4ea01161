"""Rendering sampled playlists as MPD JSON: slice files and the challenge set, in the official layout.

Key order follows the published files. Output is orjson with 2-space indentation (the MPD uses 4;
whitespace is the only difference, and it keeps the generator fast enough for full scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from mpdrec.categories import CATEGORIES
from mpdrec.synth import vocab
from mpdrec.synth.catalogue import Catalogue, album_names, artist_names, spotify_ids, track_names
from mpdrec.synth.playlists import PlaylistBatch, sample_lengths, sample_playlists

SLICE_SIZE = 1_000
CHALLENGE_PID_START = 1_000_000
_LAST_DAY = 1_509_494_400  # 2017-11-01, the MPD's last modification dates


def slice_file_name(index: int) -> str:
    start = index * SLICE_SIZE
    return f"mpd.slice.{start}-{start + SLICE_SIZE - 1}.json"


@dataclass(frozen=True)
class SliceSample:
    """One slice's playlists as arrays, before rendering; enough to compute its statistics."""

    index: int
    batch: PlaylistBatch
    rng_state: dict  # generator state after sampling, so rendering draws the same extras every time


def sample_slice(cat: Catalogue, index: int) -> SliceSample:
    rng = np.random.default_rng([cat.seed, 1, index])
    batch = sample_playlists(cat, rng, sample_lengths(rng, SLICE_SIZE))
    return SliceSample(index=index, batch=batch, rng_state=dict(rng.bit_generator.state))


def _titles(cat: Catalogue, rng: np.random.Generator, themes: np.ndarray) -> list[str]:
    generic = rng.random(len(themes)) < 0.15
    pick = rng.random(len(themes))
    out = []
    for t, g, u in zip(themes, generic, pick):
        options = vocab.GENERIC_TITLES if g else vocab.THEMES[cat.theme_names[t]]
        w = (np.arange(len(options)) + 1.0) ** -1.2
        out.append(options[int(np.searchsorted(np.cumsum(w) / w.sum(), u))])
    return out


def _track_dicts(cat: Catalogue, batch: PlaylistBatch) -> list[dict]:
    """Track entries of all playlists in order, each the MPD's track object."""
    uniq, inv = np.unique(batch.tracks, return_inverse=True)
    artists = cat.track_artist(uniq)
    albums = cat.track_album[uniq]
    t_uri = np.asarray(["spotify:track:" + s for s in spotify_ids(cat.seed, 1, uniq)], dtype=object)[inv]
    t_name = np.asarray(track_names(cat.seed, uniq), dtype=object)[inv]
    a_uri = np.asarray(["spotify:artist:" + s for s in spotify_ids(cat.seed, 2, artists)], dtype=object)[inv]
    a_name = np.asarray(artist_names(cat.seed, artists), dtype=object)[inv]
    al_uri = np.asarray(["spotify:album:" + s for s in spotify_ids(cat.seed, 3, albums)], dtype=object)[inv]
    al_name = np.asarray(album_names(cat.seed, albums), dtype=object)[inv]
    dur = cat.track_duration_ms[batch.tracks].tolist()
    pos = (np.arange(len(batch.tracks)) - np.repeat(batch.offsets[:-1], batch.lengths)).tolist()
    return [
        {
            "pos": p,
            "artist_name": an,
            "track_uri": tu,
            "artist_uri": au,
            "track_name": tn,
            "album_uri": alu,
            "duration_ms": d,
            "album_name": aln,
        }
        for p, an, tu, au, tn, alu, d, aln in zip(
            pos,
            a_name.tolist(),
            t_uri.tolist(),
            a_uri.tolist(),
            t_name.tolist(),
            al_uri.tolist(),
            dur,
            al_name.tolist(),
        )
    ]


def _distinct_per_playlist(batch: PlaylistBatch, values: np.ndarray) -> np.ndarray:
    pl = np.repeat(np.arange(len(batch.lengths)), batch.lengths)
    pairs = np.unique(np.stack([pl, values]), axis=1)
    return np.bincount(pairs[0], minlength=len(batch.lengths))


def render_slice(cat: Catalogue, sample: SliceSample) -> bytes:
    """The slice file's bytes (deterministic: same catalogue and index give the same bytes)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = sample.rng_state
    batch = sample.batch
    n = len(batch.lengths)
    tracks = _track_dicts(cat, batch)
    titles = _titles(cat, rng, batch.primary_theme)
    collaborative = rng.random(n) < 0.023
    modified = _LAST_DAY - 86_400 * np.minimum(rng.exponential(420, n).astype(np.int64), 2_400)
    followers = 1 + np.minimum(np.floor(rng.pareto(1.4, n)), 50_000).astype(np.int64)
    edits = 1 + np.floor(rng.lognormal(2.3, 0.9, n)).astype(np.int64)
    has_desc = rng.random(n) < 0.019
    desc_pick = rng.integers(0, len(vocab.DESCRIPTIONS), n)
    albums = _distinct_per_playlist(batch, cat.track_album[batch.tracks])
    artists = _distinct_per_playlist(batch, cat.track_artist(batch.tracks))
    durations = np.add.reduceat(cat.track_duration_ms[batch.tracks].astype(np.int64), batch.offsets[:-1])
    playlists = []
    for i in range(n):
        start, end = int(batch.offsets[i]), int(batch.offsets[i + 1])
        p = {
            "name": titles[i],
            "collaborative": "true" if collaborative[i] else "false",
            "pid": sample.index * SLICE_SIZE + i,
            "modified_at": int(modified[i]),
            "num_tracks": end - start,
            "num_albums": int(albums[i]),
            "num_followers": int(followers[i]),
            "tracks": tracks[start:end],
            "num_edits": int(edits[i]),
            "duration_ms": int(durations[i]),
            "num_artists": int(artists[i]),
        }
        if has_desc[i]:
            p["description"] = vocab.DESCRIPTIONS[desc_pick[i]]
        playlists.append(p)
    start_pid = sample.index * SLICE_SIZE
    doc = {
        "info": {
            "generated_on": "2017-12-03 08:41:42.057563",
            "slice": f"{start_pid}-{start_pid + SLICE_SIZE - 1}",
            "version": "v1",
        },
        "playlists": playlists,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def render_challenge(cat: Catalogue, size: int) -> bytes:
    """A challenge set in the official layout: `size` playlists, the 10 categories in equal shares."""
    if size % len(CATEGORIES):
        raise ValueError(f"challenge size {size} is not a multiple of {len(CATEGORIES)}")
    per_cat = size // len(CATEGORIES)
    rng = np.random.default_rng([cat.seed, 2])
    playlists = []
    pid = CHALLENGE_PID_START
    for c in CATEGORIES:
        batch = sample_playlists(cat, rng, sample_lengths(rng, per_cat, min_len=c.min_tracks))
        tracks = _track_dicts(cat, batch)
        titles = _titles(cat, rng, batch.primary_theme)
        for i in range(per_cat):
            start, end = int(batch.offsets[i]), int(batch.offsets[i + 1])
            n = end - start
            k = min(c.num_samples, n)
            if c.random_seeds:
                shown = np.sort(rng.choice(n, size=k, replace=False))
            else:
                shown = np.arange(k)
            p: dict = {}
            if c.has_title:
                p["name"] = titles[i]
            p.update(
                {
                    "num_holdouts": n - k,
                    "pid": pid,
                    "num_samples": k,
                    "num_tracks": n,
                    "tracks": [tracks[start + j] for j in shown.tolist()],
                }
            )
            playlists.append(p)
            pid += 1
    doc = {
        "date": "2018-01-16 08:47:28.198015",
        "version": "v1",
        "name": "mpdrec synthetic challenge set",
        "description": "Synthetic challenge set in the RecSys Challenge 2018 layout (mpdrec)",
        "playlists": playlists,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
