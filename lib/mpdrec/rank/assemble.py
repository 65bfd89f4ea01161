"""The single place where a playlist's final list is assembled: sources in priority order (the
model, then its fallbacks), seeds dropped, duplicates dropped (first occurrence wins), cut to n."""
from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from mpdrec.config import RankConfig
from mpdrec.models.data import Queries

SUBMISSION_SIZE = 500
FINAL = "final"  # the blend's submission, beside one per single source (rank.models)


def submissions(rank: RankConfig) -> list[str]:
    """Every rank/<name>/ the rank stage writes: each source, the NCF model's, the blend's."""
    return [*rank.models, *(["ncf"] if rank.ncf_model else []), FINAL]


def _ranked(df: DataFrame, queries: Queries, keep: int) -> DataFrame:
    """pid, track_idx, score, r: the source's order within each playlist, seeds dropped. A ranked
    list (`mpdrec.rank.candidates.ranked_list`: a `rank` column 0, 1, ... per playlist, no seeds)
    already is that: it is taken as it is, which spares a sort of all its rows."""
    if "rank" in df.columns:
        return df.select("pid", "track_idx", "score", F.col("rank").alias("r"))
    within = F.row_number().over(Window.partitionBy("pid").orderBy(F.desc("score"), "track_idx"))
    return (df.select("pid", "track_idx", "score").join(queries.seeds, ["pid", "track_idx"], "left_anti")
            .withColumn("r", within).where(F.col("r") <= keep))


def _merged(sources: list[tuple[str, DataFrame]], queries: Queries, n: int) -> DataFrame:
    keep = n + queries.max_seeds
    parts = [_ranked(df, queries, keep).select("pid", "track_idx", F.struct(
        F.lit(priority).alias("priority"), "r", "score", F.lit(name).alias("source")).alias("at"))
        for priority, (name, df) in enumerate(sources)]
    # each track where it first occurs: the smallest (priority, r)
    first = reduce(DataFrame.unionByName, parts).groupBy("pid", "track_idx").agg(F.min("at").alias("at"))
    order = F.row_number().over(Window.partitionBy("pid").orderBy("at.priority", "at.r", "track_idx"))
    return (first.withColumn("rank", order).where(F.col("rank") <= n)
            .select("pid", (F.col("rank") - 1).cast("int").alias("rank"), "track_idx", "at.score", "at.source"))


def assemble(sources: list[tuple[str, DataFrame]], queries: Queries, n: int = SUBMISSION_SIZE) -> DataFrame:
    """pid, rank (0-based), track_idx, score, source: exactly n rows per query playlist.

    Where the first source is a ranked list holding n tracks for a playlist, that list is the
    playlist's: only the other playlists go through the merge (and its sorts) with the fallbacks."""
    name, first = sources[0]
    if "rank" not in first.columns:
        return _merged(sources, queries, n)
    full = F.broadcast(first.where(F.col("rank") == n - 1).select("pid"))
    own = first.join(full, "pid", "left_semi").where(F.col("rank") < n).select(
        "pid", "rank", "track_idx", "score", F.lit(name).alias("source"))
    rest = _merged([(s, df.join(full, "pid", "left_anti")) for s, df in sources], queries, n)
    return own.unionByName(rest)
