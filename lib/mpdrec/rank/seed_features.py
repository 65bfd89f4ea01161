"""Features of each candidate against its query's seeds, for the re-ranker.

A source's score says how much that source likes a track, and only for the tracks in its own top
list. What decided the winning second stages was how a candidate relates to each seed, whichever
source proposed it:

* co-occurrence with each seed: share(s, c) = |playlists holding s and c| / |playlists holding s|
  over the seed's training playlists (sampled down, by the same seeded hash as the cooc source, to
  `max_per_seed`), an estimate of P(c | s). `seed_cooc_max` and `seed_cooc_mean` over the seeds,
  `seed_cooc_hits` the share of seeds that co-occur with it at all, `seed_cooc_last` the share
  for the last seeds shown (the end of a playlist says most about what comes next);
* `als_dot`: the ALS factors' score for every candidate, not just ALS's own top list.

Seedless (title-only) queries get 0 for all of them. Counts are made per query in numpy over Arrow
batches sorted by pid (`mpdrec.sorted_groups`) from broadcast CSR arrays (the seeds' sampled
postings, the training playlists' tracks), as the cooc source does.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField

from mpdrec.models import als
from mpdrec.models.cooc import Csr, csr, csr_rows, sampled_postings
from mpdrec.models.data import Queries, RankingData
from mpdrec.sorted_groups import group_starts, sorted_by, whole_groups

COOC_FEATURES = ["seed_cooc_max", "seed_cooc_mean", "seed_cooc_hits", "seed_cooc_last"]
LAST_SEEDS = 5  # seed_cooc_last: the mean share over the last (highest-position) seeds shown


def cooc_shares(seeds: np.ndarray, candidates: np.ndarray, postings: Csr, tracks: Csr) -> np.ndarray:
    """shares[i, j] = share of seed i's (sampled) training playlists that hold candidates[j]."""
    held, per_seed = csr_rows(postings, seeds.astype(np.int64))
    hit_tracks, per_playlist = csr_rows(tracks, held.astype(np.int64))
    seed_of_hit = np.repeat(np.repeat(np.arange(len(seeds)), per_seed), per_playlist)
    order = np.argsort(candidates, kind="stable")
    ranked = candidates[order]
    at = np.minimum(np.searchsorted(ranked, hit_tracks), len(ranked) - 1)
    kept = ranked[at] == hit_tracks
    counts = np.bincount(seed_of_hit[kept] * len(candidates) + order[at[kept]],
                         minlength=len(seeds) * len(candidates)).reshape(len(seeds), len(candidates))
    return counts / np.maximum(per_seed, 1)[:, None]


def _features(shares: np.ndarray) -> list[np.ndarray]:
    """COOC_FEATURES of each candidate from its shares with the seeds (rows in seed order)."""
    if not len(shares):
        return [np.zeros(shares.shape[1]) for _ in COOC_FEATURES]
    return [shares.max(axis=0), shares.mean(axis=0), (shares > 0).mean(axis=0), shares[-LAST_SEEDS:].mean(axis=0)]


def _with_cooc(shared: Broadcast) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Rows sorted by pid -> the same rows with COOC_FEATURES appended."""
    def add(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        seeds_of, postings, tracks = shared.value
        for cols in whole_groups(batches, "pid"):
            pids = cols["pid"]
            out = [np.zeros(len(pids)) for _ in COOC_FEATURES]
            bounds = group_starts(pids)
            for start, end in zip(bounds[:-1], bounds[1:]):
                seeds = seeds_of.get(int(pids[start]))
                if seeds is not None:
                    for column, values in zip(out, _features(cooc_shares(
                            seeds, cols["track_idx"][start:end].astype(np.int64), postings, tracks))):
                        column[start:end] = values
            names = list(cols)
            yield pa.RecordBatch.from_arrays([pa.array(cols[c]) for c in names] + [pa.array(v) for v in out],
                                             names=names + COOC_FEATURES)
    return add


def with_seed_cooc(rows: DataFrame, queries: Queries, data: RankingData, max_per_seed: int, seed: int) -> DataFrame:
    """`rows` (pid, track_idx, ...) with COOC_FEATURES. The seeds' order is their position in the
    playlist (`Queries.seed_positions`)."""
    positions = (queries.seed_positions if queries.seed_positions is not None
                 else queries.seeds.withColumn("pos", F.col("track_idx")))  # hand-made queries: track order
    ordered = positions.orderBy("pid", "pos").toPandas()
    starts = group_starts(ordered["pid"].to_numpy())
    seeds_of = {int(ordered["pid"].iat[a]): ordered["track_idx"].to_numpy(np.int64)[a:b]
                for a, b in zip(starts[:-1], starts[1:])}
    postings = sampled_postings(data, queries.seeds.select("track_idx").distinct(), max_per_seed, seed)
    shared = rows.sparkSession.sparkContext.broadcast((
        seeds_of, csr(postings, "track_idx", "q", data.num_tracks), data.playlist_tracks))
    schema = rows.schema
    for name in COOC_FEATURES:
        schema = schema.add(StructField(name, DoubleType(), False))
    return sorted_by(rows, "pid").mapInArrow(_with_cooc(shared), schema)


def with_als_dot(rows: DataFrame, queries: Queries, factors: als.Factors) -> DataFrame:
    """`rows` with `als_dot`: the playlist's ALS factors dot the candidate's (0 without factors,
    e.g. a title-only playlist). A join with the track factors, in Spark: nothing is collected."""
    playlist = (queries.playlists.select("pid", "playlist_idx").join(factors.playlists, "playlist_idx")
                .select("pid", F.col("features").alias("_pf")))
    track = factors.tracks.select("track_idx", F.col("features").alias("_tf"))
    dot = F.aggregate(F.zip_with("_pf", "_tf", lambda x, y: x * y), F.lit(0.0), lambda acc, x: acc + x)
    return (rows.join(F.broadcast(playlist), "pid", "left").join(track, "track_idx", "left")
            .withColumn("als_dot", F.coalesce(dot.cast("double"), F.lit(0.0))).drop("_pf", "_tf"))
