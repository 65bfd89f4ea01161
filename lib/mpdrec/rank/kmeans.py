"""The seed notebooks' approach, as one more candidate source: k-means over the NCF model's
playlist embeddings; a query playlist's candidates are the tracks most common among the training
playlists of its cluster, ordered by the NCF model's score of (playlist, track).

The clusters are fitted on the MPD training playlists' embeddings (Spark ML KMeans, seeded); a
query playlist without seeds (its embedding was never trained) or outside the model's table gets
nothing from this source (its fallbacks fill).
"""

from __future__ import annotations

from pyspark.ml.clustering import KMeans
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from mpdrec.io.paths import join
from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.rank.ncf_scores import NcfModel
from mpdrec.spark import fixed_layout


def playlist_vectors(spark: SparkSession, ncf: NcfModel) -> DataFrame:
    """playlist_idx, features: the model's playlist embedding tables side by side (NeuMF: GMF's and MLP's)."""
    emb = spark.read.parquet(join(ncf.uri, "embeddings", "playlists.parquet"))
    tables = [c for c in emb.columns if c != "playlist_idx"]
    return emb.select("playlist_idx", array_to_vector(F.concat(*tables)).alias("features"))


def fit_clusters(spark: SparkSession, data: RankingData, ncf: NcfModel, k: int, seed: int) -> DataFrame:
    """playlist_idx, cluster for every row of the model's table; fitted once per rank stage, so the
    validation and the real challenge see the same clusters."""
    vectors = playlist_vectors(spark, ncf)
    training = data.playlist_ids.where((F.col("kind") == "mpd") & (F.col("num_tracks") > 0)).select("playlist_idx")
    points = vectors.join(training, "playlist_idx", "left_semi").cache()
    model = KMeans(k=k, seed=seed, maxIter=20, featuresCol="features", predictionCol="cluster").fit(
        fixed_layout(points, ["playlist_idx"], points.count())
    )
    points.unpersist()
    return model.transform(vectors).select("playlist_idx", "cluster")


def recommend(
    data: RankingData, queries: Queries, ncf: NcfModel, clusters: DataFrame, tracks_per_cluster: int
) -> DataFrame:
    """pid, track_idx, score (the NCF logit) for the `tracks_per_cluster` commonest tracks of each
    query playlist's cluster (`clusters`: fit_clusters' output)."""
    common = (
        data.interactions.select("playlist_idx", "track_idx")
        .join(clusters, "playlist_idx")
        .groupBy("cluster", "track_idx")
        .agg(F.count("*").alias("n"))
    )
    top = common.withColumn("r", F.row_number().over(Window.partitionBy("cluster").orderBy(F.desc("n"), "track_idx")))
    pairs = (
        queries.playlists.where(F.col("num_samples") > 0)
        .select("pid", "playlist_idx")
        .join(F.broadcast(clusters), "playlist_idx")
        .join(top.where(F.col("r") <= tracks_per_cluster), "cluster")
        .select("pid", "track_idx")
    )
    scored = ncf.scores(pairs, queries, broadcast=data.broadcast)
    return scored.select("pid", "track_idx", F.col("ncf_score").cast("double").alias("score"))
