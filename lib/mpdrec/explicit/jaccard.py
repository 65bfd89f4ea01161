"""The study's baseline: user-user Jaccard similarity, predicting a rating as the similarity-weighted
mean of the neighbours' ratings of the item, in Spark (no user x user matrix is ever dense).

sim(u, v) = |items u and v rated equally| / |items either rated|. Pairs come from a self-join of the
training ratings on the item, so only users who share an item are ever paired; an item's raters
beyond `max_raters` are sampled down (seeded) for the pairs, since an item with n raters makes n^2
of them (its ratings still all count in the union sizes and as neighbours' votes). For a rating to
predict, the neighbours are the item's training raters with sim > 0; with none, the caller falls
back to the user's mean, then the global mean.

The neighbour rows (user, item, sim, the neighbour's rating) are built once and kept: each target and
sigmoid point is then one aggregation over them.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from mpdrec.explicit.targets import Target


def similarities(train: DataFrame, max_raters: int, seed: int) -> DataFrame:
    """(user_idx, other_idx, sim) for every ordered pair of users with sim > 0."""
    sizes = train.groupBy("user_idx").agg(F.count("*").alias("n"))
    by_item = Window.partitionBy("item_idx").orderBy(F.xxhash64(F.lit(seed), "user_idx"), "user_idx")
    sampled = (
        train.withColumn("_k", F.row_number().over(by_item))
        .where(F.col("_k") <= max_raters)
        .select("user_idx", "item_idx", "rating")
    )
    a, b = sampled.alias("a"), sampled.alias("b")
    pairs = (
        a.join(b, "item_idx")
        .where(F.col("a.user_idx") != F.col("b.user_idx"))
        .groupBy(F.col("a.user_idx").alias("user_idx"), F.col("b.user_idx").alias("other_idx"))
        .agg(F.count("*").alias("both"), F.sum((F.col("a.rating") == F.col("b.rating")).cast("int")).alias("equal"))
        .where("equal > 0")
    )
    other = sizes.select(F.col("user_idx").alias("other_idx"), F.col("n").alias("n_other"))
    union = F.col("n") + F.col("n_other") - F.col("both")
    return (
        pairs.join(sizes, "user_idx")
        .join(other, "other_idx")
        .select("user_idx", "other_idx", (F.col("equal") / union).alias("sim"))
    )


def neighbour_votes(train: DataFrame, queries: DataFrame, sims: DataFrame) -> DataFrame:
    """(user_idx, item_idx, sim, rating): each query pair's neighbours who rated its item, persisted."""
    raters = train.select(F.col("user_idx").alias("other_idx"), "item_idx", F.col("rating").alias("vote"))
    return (
        queries.select("user_idx", "item_idx")
        .distinct()
        .join(raters, "item_idx")
        .join(sims, ["user_idx", "other_idx"])
        .select("user_idx", "item_idx", "sim", "vote")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )


def predict(votes: DataFrame, target: Target) -> DataFrame:
    """(user_idx, item_idx, prediction): the similarity-weighted mean of the votes' target values."""
    return votes.groupBy("user_idx", "item_idx").agg(
        (F.sum(F.col("sim") * target.column(F.col("vote"))) / F.sum("sim")).alias("prediction")
    )
