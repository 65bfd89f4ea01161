"""The explicit ratings' train / validation / test split, from the run's interactions table.

Rows whose value is `explicit.implicit_value` (Book-Crossing's 0: "interacted, did not rate") are left
out, as the study did. Each remaining (user, item) rating goes to a split by a hash of (seed, user,
item): the same config gives the same split on any partitioning, and a rating's split does not depend
on the other rows.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.config import ExplicitConfig
from mpdrec.errors import InputError
from mpdrec.io.paths import join
from mpdrec.spark import one_row, seeded_share

SPLITS = ("train", "validation", "test")


def ratings(spark: SparkSession, interactions_dir: str, implicit_value: float | None) -> DataFrame:
    """(user_idx, item_idx, rating) of every explicit rating."""
    data = spark.read.parquet(join(interactions_dir, "data"))
    if implicit_value is not None:
        data = data.where(F.col("weight") != F.lit(implicit_value))
    return data.select(
        F.col("playlist_idx").alias("user_idx"),
        F.col("track_idx").alias("item_idx"),
        F.col("weight").cast("double").alias("rating"),
    )


def assign(rated: DataFrame, shares: list[float], seed: int) -> DataFrame:
    """`rated` with `split`: train, validation or test, drawn per (user, item) from the seed."""
    u = seeded_share(seed, "user_idx", "item_idx")
    return rated.withColumn(
        "split", F.when(u < shares[0], "train").when(u < shares[0] + shares[1], "validation").otherwise("test")
    )


def write_splits(
    spark: SparkSession, interactions_dir: str, out_dir: str, cfg: ExplicitConfig, seed: int
) -> dict[str, Any]:
    rated = assign(ratings(spark, interactions_dir, cfg.implicit_value), cfg.split, seed).cache()
    counts: dict[str, int] = dict(rated.groupBy("split").count().collect())
    if not counts.get("train") or not counts.get("validation") or not counts.get("test"):
        raise InputError(
            f"explicit: {join(interactions_dir, 'data')} has too few explicit ratings to split "
            f"({counts or 'none'}; implicit value {cfg.implicit_value} left out)"
        )
    for name in SPLITS:
        rated.where(F.col("split") == name).drop("split").write.parquet(join(out_dir, name))
    rated.unpersist()
    values = one_row(spark.read.parquet(join(out_dir, "train")).agg(F.min("rating"), F.max("rating")))
    return {"tables": {s: int(counts[s]) for s in SPLITS}, "rating_range": [float(values[0]), float(values[1])]}
