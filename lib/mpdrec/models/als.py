"""Implicit matrix factorisation (Hu, Koren and Volinsky, "Collaborative Filtering for Implicit
Feedback Datasets", ICDM 2008) with Spark ML's ALS, and its ranking source.

Spark's implicit ALS takes each rating as r and uses confidence c = 1 + alpha * |r| with preference
p = [r > 0]; so the weighting of the interaction count happens here, in the rating column:
binary r' = 1, counts r' = r, log r' = log(1 + r / eps) (the paper's log scaling). Note that Spark
multiplies regParam by each row's number of ratings (ALS-WR), unlike the paper and `implicit`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.blocked_topn import percentile_ranks, top_n
from mpdrec.config import AlsConfig
from mpdrec.io.paths import join
from mpdrec.lists.inputs import Queries

PLAYLIST_FACTORS, TRACK_FACTORS = "playlist_factors", "track_factors"


@dataclass(frozen=True)
class Factors:
    playlists: DataFrame  # playlist_idx int, features array<float>
    tracks: DataFrame  # track_idx int, features array<float>

    @classmethod
    def of(cls, model: ALSModel) -> Factors:
        return cls(
            model.userFactors.select(F.col("id").alias("playlist_idx"), "features"),
            model.itemFactors.select(F.col("id").alias("track_idx"), "features"),
        )

    @classmethod
    def load(cls, spark: SparkSession, directory: str) -> Factors:
        return cls(
            spark.read.parquet(join(directory, PLAYLIST_FACTORS)), spark.read.parquet(join(directory, TRACK_FACTORS))
        )

    def save(self, directory: str) -> None:
        self.playlists.write.mode("overwrite").parquet(join(directory, PLAYLIST_FACTORS))
        self.tracks.write.mode("overwrite").parquet(join(directory, TRACK_FACTORS))


def ratings(interactions: DataFrame, weighting: str, eps: float) -> DataFrame:
    """playlist_idx, track_idx, rating: the interaction weight (occurrences in the playlist) as r'."""
    r = F.col("weight").cast("double")
    rating = {"binary": F.lit(1.0), "counts": r, "log": F.log1p(r / eps)}[weighting]
    return interactions.select("playlist_idx", "track_idx", rating.cast("float").alias("rating"))


SPARK_BLOCKS = 10  # Spark's default user and item blocks


def blocks(cfg: AlsConfig) -> int:
    """User and item blocks: als.blocks, or Spark's 10. Not grown with the data: each playlist's
    factor is shuffled to every item block holding one of its tracks (and each track's to every
    playlist block), so an iteration's shuffle grows with the blocks, and on a few cores more blocks
    only add shuffle. Not from the cluster's cores either: the blocks seed the initial factors, and
    the same config must fit the same model anywhere; a cluster profile sets its own."""
    return cfg.blocks or SPARK_BLOCKS


def estimator(cfg: AlsConfig, rank: int, alpha: float, reg_param: float, seed: int) -> ALS:
    """Spark's ALS for one grid point; the other settings from config."""
    n = blocks(cfg)
    return ALS(
        rank=rank,
        alpha=alpha,
        regParam=reg_param,
        maxIter=cfg.max_iter,
        implicitPrefs=True,
        userCol="playlist_idx",
        itemCol="track_idx",
        ratingCol="rating",
        seed=seed,
        checkpointInterval=cfg.checkpoint_interval or -1,
        coldStartStrategy="drop",
        numUserBlocks=n,
        numItemBlocks=n,
    )


def query_factors(factors: Factors, queries: Queries) -> DataFrame:
    """pid, features, exclude (the seeds): every query playlist that has factors (title-only ones do not)."""
    seeds = queries.seeds.groupBy("pid").agg(F.collect_list("track_idx").alias("exclude"))
    return (
        queries.playlists.where(F.col("playlist_idx").isNotNull())
        .select("pid", "playlist_idx")
        .join(factors.playlists, "playlist_idx")
        .join(seeds, "pid", "left")
        .select("pid", "features", F.coalesce("exclude", F.array().cast("array<int>")).alias("exclude"))
    )


def recommend(factors: Factors, queries: Queries, n: int, block_rows: int) -> DataFrame:
    """The ranking source: pid, track_idx, score, rank: the n best non-seed tracks by dot product,
    ranked (score, then track_idx), as `mpdrec.rank.candidates.ranked_list` would rank them."""
    return top_n(query_factors(factors, queries), factors.tracks, n, block_rows)


def percentiles(factors: Factors, queries: Queries, targets: DataFrame, block_rows: int) -> DataFrame:
    """pid, track_idx, percentile of each hidden (target) track among all non-seed tracks."""
    return percentile_ranks(query_factors(factors, queries), factors.tracks, targets, block_rows)
