"""Item co-occurrence: score(p, j) = sum over seeds s of p of co-occurrences(s, j) / popularity(j)^beta.

Computed through playlists, never as an item-item matrix: sum_s cooc(s, j) equals the sum, over
training playlists q containing j, of |seeds(p) & q|. Only the `neighbours` playlists sharing most
seeds with p are used, and a seed in very many playlists is sampled down (by a seeded hash) to
`max_per_seed` of them, which bounds the join at MPD scale. Dividing by popularity^beta keeps
hits from drowning specific co-occurrences.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from mpdrec.models.data import Queries, RankingData


def recommend(data: RankingData, queries: Queries, n: int, neighbours: int, beta: float,
              max_per_seed: int, seed: int) -> DataFrame:
    pop = data.track_ids.select("track_idx", "playlist_count")
    seed_tracks = queries.seeds.select("track_idx").distinct()
    keep_share = F.least(F.lit(1.0), F.lit(float(max_per_seed)) / F.col("playlist_count"))
    bucket = (F.abs(F.xxhash64(F.lit(seed), "playlist_idx", "track_idx")) % 1_000_000) / 1_000_000.0
    postings = (data.interactions.select("playlist_idx", "track_idx").join(F.broadcast(seed_tracks), "track_idx")
                .join(pop, "track_idx").where(bucket < keep_share).select("track_idx", F.col("playlist_idx").alias("q")))
    query_self = queries.playlists.select("pid", F.col("playlist_idx").alias("self"))
    overlap = (queries.seeds.join(postings, "track_idx").join(F.broadcast(query_self), "pid")
               .where(F.col("self").isNull() | (F.col("q") != F.col("self")))
               .groupBy("pid", "q").agg(F.count("*").alias("overlap")))
    nearest = overlap.withColumn("r", F.row_number().over(
        Window.partitionBy("pid").orderBy(F.desc("overlap"), "q"))).where(F.col("r") <= neighbours)
    scores = (nearest.join(data.interactions.select(F.col("playlist_idx").alias("q"), "track_idx"), "q")
              .groupBy("pid", "track_idx").agg(F.sum("overlap").alias("s")))
    return (scores.join(pop, "track_idx")
            .select("pid", "track_idx", (F.col("s") / F.pow(F.col("playlist_count"), beta)).alias("score")))
