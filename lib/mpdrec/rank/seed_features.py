"""Features of each candidate against its query's seeds, for the re-ranker.

A source's score says how much that source likes a track, and only for the tracks in its own top
list. What decided the winning second stages was how a candidate relates to each seed, whichever
source proposed it:

* co-occurrence with each seed: share(s, c) = |playlists holding s and c| / |playlists holding s|
  over the seed's training playlists (sampled down, by the same seeded hash as the cooc source, to
  `max_per_seed`: rank.feature_playlists_per_seed), an estimate of P(c | s). What a query costs is
  every track of its seeds' sampled playlists, so the sample bounds it at any data size.
  `seed_cooc_max` and `seed_cooc_mean` over the seeds,
  `seed_cooc_hits` the share of seeds that co-occur with it at all, `seed_cooc_last` the share
  for the last seeds shown (the end of a playlist says most about what comes next);
* co-occurrence of the candidate's artist with each seed's artist, the same share over playlists
  of artists (each seed artist's playlists sampled down to `max_per_seed` by a seeded hash):
  `seed_artist_cooc_max` and `_mean` over the seeds. Most tracks are in few playlists (on the real
  sample most in one), their artists in many, so this is where sparse seeds still say something;
  it helped the ranker on the real sample, where ALS factor similarities of the seeds and the
  candidate added nothing beyond `als_dot` (docs/quality.md). `artist_popularity` (log of the artist's
  playlists) goes with it;
* `als_dot` (`dae_dot`): the ALS factors' (the autoencoder's) score for every candidate, not just
  the source's own top list.

Seedless (title-only) queries get 0 for all but `artist_popularity`. Counts are made per query in
numpy, a step of the feature rows' Arrow pass (`mpdrec.rank.feature_rows`), from broadcast CSR
arrays (the seeds' sampled postings, the training playlists' tracks and artists), as the cooc
source does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField

from mpdrec.csr import Csr, csr, csr_rows, row_ids, row_sums, transposed
from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.models import als
from mpdrec.models.cooc import sampled_postings
from mpdrec.rank.feature_rows import BatchFunction, Columns, ColumnStep, FeatureRows, Share
from mpdrec.sorted_groups import group_starts
from mpdrec.vectors import VectorRows

COOC_FEATURES = ["seed_cooc_max", "seed_cooc_mean", "seed_cooc_hits", "seed_cooc_last"]
ARTIST_FEATURES = ["seed_artist_cooc_max", "seed_artist_cooc_mean", "artist_popularity"]
SEED_FEATURES = COOC_FEATURES + ARTIST_FEATURES
LAST_SEEDS = 5  # seed_cooc_last: the mean share over the last (highest-position) seeds shown


@dataclass(frozen=True)
class Scratch:
    """cooc_shares' lookups over the value ids (tracks, or artists), one per task for all its
    queries: whether a value is a candidate, a byte per id so that the gather over every sampled
    playlist's values stays in cache (an int64 slot per id did not), and its candidate column,
    read for the hits only. `member` is left all False after each query."""

    member: np.ndarray
    column: np.ndarray

    @classmethod
    def over(cls, ids: int) -> Scratch:
        return cls(np.zeros(ids, bool), np.zeros(ids, np.int32))


def cooc_shares(
    seeds: np.ndarray, candidates: np.ndarray, postings: Csr, rows: Csr, scratch: Scratch | None = None
) -> np.ndarray:
    """shares[i, j] = share of seed i's (sampled) training playlists whose row in `rows` (their
    tracks, or their artists) holds candidates[j] (distinct ids).

    Each distinct seed and each distinct playlist is read once (a query's seeds share artists, and
    popular seeds share playlists), and whether a value is a candidate is one lookup in `scratch`
    (made here when None; a task passes one for all its queries). A sorted search per value took
    several times as long (on the synthetic data's blend-training queries, for the same shares)."""
    distinct, seed_back = np.unique(seeds, return_inverse=True)
    held, per_seed = csr_rows(postings, distinct.astype(np.int64))
    playlists, held_back = np.unique(held, return_inverse=True)
    values, per_playlist = csr_rows(rows, playlists.astype(np.int64))
    if scratch is None:
        scratch = Scratch.over(max(int(values.max(initial=0)), int(candidates.max(initial=0))) + 1)
    scratch.member[candidates] = True
    kept = scratch.member[values]
    scratch.member[candidates] = False
    scratch.column[candidates] = np.arange(len(candidates), dtype=np.int32)
    # the candidates each distinct playlist holds (CSR), then read once per (seed, playlist) posting
    offsets = np.zeros(len(playlists) + 1, np.int64)
    np.cumsum(row_sums(kept, per_playlist), out=offsets[1:])
    columns, held_lengths = csr_rows((offsets, scratch.column[values[kept]]), held_back.astype(np.int64))
    seed_of = np.repeat(row_ids(per_seed, np.int32), held_lengths)
    counts = np.bincount(seed_of * len(candidates) + columns, minlength=len(distinct) * len(candidates))
    shares = counts.reshape(len(distinct), len(candidates)) / np.maximum(per_seed, 1)[:, None]
    return shares[seed_back]


def _features(shares: np.ndarray) -> list[np.ndarray]:
    """COOC_FEATURES of each candidate from its shares with the seeds (rows in seed order)."""
    if not len(shares):
        return [np.zeros(shares.shape[1]) for _ in COOC_FEATURES]
    return [shares.max(axis=0), shares.mean(axis=0), (shares > 0).mean(axis=0), shares[-LAST_SEEDS:].mean(axis=0)]


TABLES = ("playlist_tracks", "track_artists", "playlist_artists")  # RankingData's, shared with other readers


@dataclass(frozen=True)
class _Shared:
    """What every task reads: the query set's lookups (the seeds of each query in order, the sampled
    postings of the seed tracks and seed artists, each artist's log popularity), broadcast together,
    and the training TABLES (the playlists' tracks and artists, each track's artist), each broadcast
    once for every reader (`RankingData.shared`)."""

    seeds_of: dict[int, np.ndarray]
    track_postings: Csr
    playlist_tracks: Csr
    track_artists: np.ndarray
    artist_postings: Csr
    playlist_artists: Csr
    artist_popularity: np.ndarray


def _artist_features(
    seeds: np.ndarray | None, candidates: np.ndarray, shared: _Shared, scratch: Scratch | None = None
) -> list[np.ndarray]:
    """ARTIST_FEATURES of each candidate track (`scratch`: cooc_shares' over artist ids)."""
    artists = shared.track_artists[candidates]
    popularity = shared.artist_popularity[artists]
    if seeds is None or not len(seeds):
        return [np.zeros(len(candidates)), np.zeros(len(candidates)), popularity]
    distinct, back = np.unique(artists, return_inverse=True)  # cooc_shares wants each candidate once
    shares = cooc_shares(
        shared.track_artists[seeds], distinct, shared.artist_postings, shared.playlist_artists, scratch
    )[:, back]
    return [shares.max(axis=0), shares.mean(axis=0), popularity]


def _cooc_columns(lookups: Broadcast, shared: dict[str, Broadcast]) -> Callable[[], BatchFunction]:
    """A batch's SEED_FEATURES, from its pid and track_idx columns (whole queries, sorted by pid)."""

    def bind() -> BatchFunction:
        tables = _Shared(**lookups.value, **{name: table.value for name, table in shared.items()})
        track_scratch = Scratch.over(len(tables.track_artists))  # one per task
        artist_scratch = Scratch.over(len(tables.artist_popularity))

        def add(cols: Columns) -> dict[str, np.ndarray]:
            pids = cols["pid"]
            out = [np.zeros(len(pids)) for _ in SEED_FEATURES]
            bounds = group_starts(pids)
            for start, end in zip(bounds[:-1], bounds[1:]):
                seeds = tables.seeds_of.get(int(pids[start]))
                candidates = cols["track_idx"][start:end].astype(np.int64)
                cooc = (
                    [np.zeros(len(candidates)) for _ in COOC_FEATURES]
                    if seeds is None
                    else _features(
                        cooc_shares(seeds, candidates, tables.track_postings, tables.playlist_tracks, track_scratch)
                    )
                )
                for column, values in zip(out, cooc + _artist_features(seeds, candidates, tables, artist_scratch)):
                    column[start:end] = values
            return dict(zip(SEED_FEATURES, out))

        return add

    return bind


def _unit_hash(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """A seeded hash of each (a, b) pair as a float in [0, 1) (splitmix64's finaliser): the same
    seed draws the same sample on every machine."""
    with np.errstate(over="ignore"):
        x = (a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            b.astype(np.uint64) + np.uint64(seed) * np.uint64(0xBF58476D1CE4E5B9)
        )
        x ^= x >> np.uint64(31)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def artist_postings(
    playlist_artists: Csr, artists: np.ndarray, width: int, max_per_seed: int, seed: int
) -> tuple[Csr, np.ndarray]:
    """The playlists of each of `artists` (CSR over the artist codes 0..width-1; other rows empty),
    an artist in more than `max_per_seed` playlists keeping each with probability max_per_seed / its
    playlists; and every artist's number of playlists (0 for an artist in none)."""
    offsets, values = playlist_artists
    counts = np.bincount(values, minlength=width)
    wanted = np.zeros(width, bool)
    wanted[artists] = True
    rows = row_ids(np.diff(offsets))
    keep_share = np.minimum(1.0, max_per_seed / np.maximum(counts, 1))
    keep = wanted[values] & (_unit_hash(rows, values, seed) < keep_share[values])
    return transposed(playlist_artists, keep, width), counts


def with_seed_cooc(rows: FeatureRows, queries: Queries, data: RankingData, max_per_seed: int, seed: int) -> FeatureRows:
    """`rows` (pid, track_idx, ...) with SEED_FEATURES, computed in the pass that reads them
    (`FeatureRows`). The seeds' order is their position in the playlist (`Queries.seed_positions`).
    Its broadcasts last until `data.release()`."""
    positions = (
        queries.seed_positions
        if queries.seed_positions is not None
        else queries.seeds.withColumn("pos", F.col("track_idx"))
    )  # hand-made queries: track order
    ordered = positions.orderBy("pid", "pos").toPandas()
    pids, tracks = ordered["pid"].to_numpy(), ordered["track_idx"].to_numpy(np.int64)
    starts = group_starts(pids)
    # slices of one array (a column converted per query held 10,000 copies of it: docs/benchmarks.md)
    seeds_of = {int(pids[a]): tracks[a:b] for a, b in zip(starts[:-1], starts[1:])}
    postings = sampled_postings(data, queries.seeds.select("track_idx").distinct(), max_per_seed, seed)
    seed_artists = np.unique(data.track_artists[tracks])
    by_artist, artist_counts = artist_postings(
        data.playlist_artists, seed_artists, int(data.track_artists.max(initial=0)) + 1, max_per_seed, seed
    )
    lookups = data.broadcast(
        {
            "seeds_of": seeds_of,
            "track_postings": csr(postings, "track_idx", "q", data.num_tracks),
            "artist_postings": by_artist,
            "artist_popularity": np.log1p(artist_counts),
        }
    )
    fields = tuple(StructField(name, DoubleType(), False) for name in SEED_FEATURES)
    return rows.then(
        ColumnStep(fields, _cooc_columns(lookups, {t: data.shared(t) for t in TABLES}), whole_queries=True)
    )


def with_factor_dot(
    rows: FeatureRows,
    queries: Queries,
    factors: als.Factors,
    share: Share,
    tracks: DataFrame | None = None,
    known: KnownDot | None = None,
    column: str = "als_dot",
) -> FeatureRows:
    """`rows` with `column` (`als_dot`; `dae_dot` with the autoencoder's factors, which have ALS's
    layout), computed in the pass that reads them: the playlist's factors dot the candidate's (0
    without factors, e.g. a title-only playlist), or the `known` score where a row has one (the
    source's own candidates, whose score is this dot). The factors of the query playlists
    and of `tracks` (a track_idx column holding every track whose dot is not known, cheap to
    compute: from a cached candidate table; without, the rows' own tracks) are collected, shared
    with the executors by `share` (`RankingData.broadcast`) and looked up per batch
    (`mpdrec.vectors.VectorRows`): joined to the rows in Spark, the dot was a higher-order function
    that Spark interprets (the largest item of the JVM's time in the features step, docs/scale.md)."""
    playlists = (
        queries.playlists.select("pid", "playlist_idx")
        .join(factors.playlists, "playlist_idx")
        .select("pid", "features")
    )
    wanted = (rows.frame if tracks is None else tracks).select("track_idx").distinct()
    lookups = share(
        {
            "playlists": VectorRows.collect(playlists, "pid"),
            "tracks": VectorRows.collect(
                factors.tracks.join(wanted, "track_idx").select("track_idx", "features"), "track_idx"
            ),
        }
    )
    return rows.then(ColumnStep((StructField(column, DoubleType(), False),), _factor_dot(lookups, known, column)))


@dataclass(frozen=True)
class KnownDot:
    """Where rows already carry the dot: `score` where `rank` is below `depth` (a source's filled
    columns: ALS's score and rank, its depth where it did not propose the track)."""

    score: str
    rank: str
    depth: int


def _factor_dot(lookups: Broadcast, known: KnownDot | None, column: str) -> Callable[[], BatchFunction]:
    def bind() -> BatchFunction:
        playlists, tracks = lookups.value["playlists"], lookups.value["tracks"]

        def dot(cols: Columns) -> dict[str, np.ndarray]:
            (p, p_known), (t, t_known) = playlists.positions(cols["pid"]), tracks.positions(cols["track_idx"])
            values = np.zeros(len(p), np.float64)
            given = cols[known.rank] < known.depth if known is not None else np.zeros(len(p), bool)
            if known is not None:
                values[given] = cols[known.score][given]
            todo = np.flatnonzero(p_known & t_known & ~given)
            if len(todo):  # float32 products summed in float64, as Spark's aggregate over zip_with did
                products = playlists.tables["features"][p[todo]] * tracks.tables["features"][t[todo]]
                values[todo] = products.astype(np.float64).sum(axis=1)
            return {column: values}

        return dot

    return bind
