"""Item co-occurrence: score(p, j) = sum over seeds s of p of co-occurrences(s, j) / popularity(j)^beta.

Computed through playlists, never as an item-item matrix: sum_s cooc(s, j) equals the sum, over
training playlists q containing j, of |seeds(p) & q|. Only the `neighbours` playlists sharing most
seeds with p are used (ties to the lower playlist_idx), and a seed in very many playlists is sampled
down (by a seeded hash) to `max_per_seed` of them, which bounds the work at MPD scale. Dividing by
popularity^beta keeps hits from drowning specific co-occurrences.

Both passes move arrays, not one row per (query, posting): a seed's sampled playlists travel as one
list and each query's overlaps are counted in numpy (`_nearest`); then each neighbour's tracks travel
as one list and each query's scores are summed and cut to its best tracks in numpy (`_best`). Rows
per (query, posting) pair, grouped and windowed by Spark, cost ten times more at 100 slices.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.models.data import Queries, RankingData


def sampled_postings(data: RankingData, tracks: DataFrame, max_per_seed: int, seed: int) -> DataFrame:
    """track_idx, q: the training playlists holding each of `tracks` (a track_idx column), those of
    a track in more than `max_per_seed` playlists kept with probability max_per_seed / playlist_count
    by a seeded hash of (playlist, track): the same seed keeps the same playlists."""
    keep_share = F.least(F.lit(1.0), F.lit(float(max_per_seed)) / F.col("playlist_count"))
    bucket = (F.abs(F.xxhash64(F.lit(seed), "playlist_idx", "track_idx")) % 1_000_000) / 1_000_000.0
    return (data.interactions.select("playlist_idx", "track_idx").join(F.broadcast(tracks), "track_idx")
            .join(data.track_ids.select("track_idx", "playlist_count"), "track_idx")
            .where(bucket < keep_share).select("track_idx", F.col("playlist_idx").alias("q")))


def _nearest(neighbours: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """One query's seeds (rows: its own playlist_idx `self`, one seed's playlists `qs`) -> its
    `neighbours` training playlists sharing most seeds: pid, q, overlap."""
    def nearest(group: pd.DataFrame) -> pd.DataFrame:
        qs = np.concatenate(group["qs"].to_numpy())
        own = group["self"].iloc[0]
        if not pd.isna(own):
            qs = qs[qs != own]
        q, overlap = np.unique(qs, return_counts=True)
        keep = np.lexsort((q, -overlap))[:neighbours]
        return pd.DataFrame({"pid": group["pid"].iloc[0], "q": q[keep], "overlap": overlap[keep]})
    return nearest


def _best(keep: int, weight: np.ndarray) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """One query's neighbours (rows: overlap, the neighbour's `tracks`) -> its `keep` best tracks:
    pid, track_idx, score = summed overlaps * weight[track] (1 / popularity^beta), score descending
    then track_idx."""
    def best(group: pd.DataFrame) -> pd.DataFrame:
        tracks = group["tracks"].to_numpy()
        hits = np.concatenate(tracks)
        overlaps = np.repeat(group["overlap"].to_numpy(np.float64), [len(t) for t in tracks])
        ids, where = np.unique(hits, return_inverse=True)
        score = np.bincount(where, weights=overlaps) * weight[ids]
        top = np.lexsort((ids, -score))[:keep]
        return pd.DataFrame({"pid": group["pid"].iloc[0], "track_idx": ids[top], "score": score[top]})
    return best


def recommend(data: RankingData, queries: Queries, n: int, neighbours: int, beta: float,
              max_per_seed: int, seed: int) -> DataFrame:
    """pid, track_idx, score: each query's n + (most seeds) best tracks, seeds included (they are
    dropped downstream, and n remain)."""
    postings = (sampled_postings(data, queries.seeds.select("track_idx").distinct(), max_per_seed, seed)
                .groupBy("track_idx").agg(F.collect_list("q").alias("qs")))
    query_self = queries.playlists.select("pid", F.col("playlist_idx").alias("self"))
    nearest = (queries.seeds.join(postings, "track_idx").join(F.broadcast(query_self), "pid")
               .select("pid", "self", "qs").groupBy("pid")
               .applyInPandas(_nearest(neighbours), "pid long, q int, overlap long"))
    tracks = (data.interactions.groupBy(F.col("playlist_idx").alias("q"))
              .agg(F.collect_list("track_idx").alias("tracks")))
    popularity = data.track_ids.select("track_idx", "playlist_count").toPandas()
    weight = np.zeros(data.num_tracks, np.float64)
    weight[popularity["track_idx"].to_numpy()] = popularity["playlist_count"].to_numpy(np.float64) ** -beta
    return (nearest.join(tracks, "q").select("pid", "overlap", "tracks").groupBy("pid")
            .applyInPandas(_best(n + queries.max_seeds, weight), "pid long, track_idx int, score double"))
