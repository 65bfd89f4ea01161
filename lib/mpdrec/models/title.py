"""Title model for cold start: the tracks most common in training playlists with the same
normalised title (see mpdrec.text.normalize_name); titles shared by too few playlists are skipped,
and the ranking falls back to popularity."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from mpdrec.models.data import Queries, RankingData


def recommend(data: RankingData, queries: Queries, n: int, min_playlists: int) -> DataFrame:
    names = queries.playlists.where(F.length("name_norm") > 0).select("name_norm").distinct()
    named = (data.playlist_ids.where("num_tracks > 0").select("playlist_idx", "name_norm")
             .join(F.broadcast(names), "name_norm"))
    support = named.groupBy("name_norm").agg(F.count("*").alias("support")).where(
        F.col("support") >= min_playlists)
    counts = (data.interactions.select("playlist_idx", "track_idx").join(named, "playlist_idx")
              .groupBy("name_norm", "track_idx").agg(F.count("*").alias("hits"))
              .join(F.broadcast(support), "name_norm"))
    keep = n + queries.max_seeds
    ranked = counts.withColumn("r", F.row_number().over(
        Window.partitionBy("name_norm").orderBy(F.desc("hits"), "track_idx"))).where(F.col("r") <= keep)
    return (queries.playlists.select("pid", "name_norm").join(ranked, "name_norm")
            .select("pid", "track_idx", (F.col("hits") / F.col("support")).alias("score")))
