"""Title model for cold start: the tracks most common in training playlists whose normalised titles
share a word with the query's title (see mpdrec.text.normalize_name), each word weighted by its
inverse document frequency, so that "summer hits 2017" learns from every "summer" and every "hits"
playlist rather than only from playlists with that exact name.

Why words and not exact names: most titles are rare as a whole, while their words are shared (on
the real sample, words raised the title-only category's R-precision over exact names:
docs/quality.md). A track's score for a query is the idf-weighted mean, over the query's words, of
the share of that word's playlists that hold the track; a word needs `min_playlists` training
playlists to count. Each word keeps its `n + max_seeds` commonest tracks (what a list of n can
use), so the work grows with the distinct words of the queries, not with the catalogue. Playlists
without a known word get nothing here and fall back to popularity.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from mpdrec.lists.inputs import Queries, RankingData


def _words(playlists: DataFrame, key: str) -> DataFrame:
    """(key, word): each distinct word of each playlist's normalised title."""
    return playlists.select(
        key, F.explode(F.array_distinct(F.split(F.coalesce("name_norm", F.lit("")), " "))).alias("word")
    ).where(F.length("word") > 0)


def _idf(support: Column, playlists: int) -> Column:
    """log(1 + N / support): rare words weigh more, and a word in every playlist still counts a little."""
    return F.log1p(F.lit(float(playlists)) / support)


def recommend(data: RankingData, queries: Queries, n: int, min_playlists: int) -> DataFrame:
    asked = _words(queries.playlists, "pid")
    training = data.playlist_ids.where("num_tracks > 0")
    named = _words(training, "playlist_idx").join(F.broadcast(asked.select("word").distinct()), "word")
    support = (
        named.groupBy("word")
        .agg(F.count("*").alias("support"))
        .where(F.col("support") >= min_playlists)
        .withColumn("idf", _idf(F.col("support"), training.count()))
    )
    counts = (
        data.interactions.select("playlist_idx", "track_idx")
        .join(named, "playlist_idx")
        .groupBy("word", "track_idx")
        .agg(F.count("*").alias("hits"))
    )
    keep = n + queries.max_seeds
    ranked = (
        counts.withColumn("r", F.row_number().over(Window.partitionBy("word").orderBy(F.desc("hits"), "track_idx")))
        .where(F.col("r") <= keep)
        .join(F.broadcast(support), "word")
    )
    weights = asked.join(F.broadcast(support), "word").groupBy("pid").agg(F.sum("idf").alias("idf_sum"))
    return (
        asked.join(ranked, "word")
        .groupBy("pid", "track_idx")
        .agg(F.sum(F.col("idf") * F.col("hits") / F.col("support")).alias("weighted"))
        .join(weights, "pid")
        .select("pid", "track_idx", (F.col("weighted") / F.col("idf_sum")).alias("score"))
    )
