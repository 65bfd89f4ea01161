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


def assemble(sources: list[tuple[str, DataFrame]], queries: Queries, n: int = SUBMISSION_SIZE) -> DataFrame:
    """pid, rank (0-based), track_idx, score, source: exactly n rows per query playlist."""
    keep = n + queries.max_seeds
    parts = []
    for priority, (name, df) in enumerate(sources):
        within = F.row_number().over(Window.partitionBy("pid").orderBy(F.desc("score"), "track_idx"))
        parts.append(df.select("pid", "track_idx", "score").withColumn("r", within).where(F.col("r") <= keep)
                     .withColumn("source", F.lit(name)).withColumn("priority", F.lit(priority)))
    candidates = reduce(DataFrame.unionByName, parts).join(queries.seeds, ["pid", "track_idx"], "left_anti")
    first = F.row_number().over(Window.partitionBy("pid", "track_idx").orderBy("priority", "r"))
    order = F.row_number().over(Window.partitionBy("pid").orderBy("priority", "r", "track_idx")) - 1
    return (candidates.withColumn("first", first).where("first = 1").withColumn("rank", order)
            .where(F.col("rank") < n).select("pid", F.col("rank").cast("int"), "track_idx", "score", "source"))
