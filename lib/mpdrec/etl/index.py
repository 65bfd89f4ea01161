"""Stage 2b: dense ids and the `interactions` table every model trains on.

Ids are deterministic across runs and machines because they come from a total order, never from
Spark's partition-dependent ids: tracks by (distinct training playlists desc, URI), so track_idx 0
is the most popular; playlists by pid (MPD, then challenge pids from 1,000,000). A track repeated
within a playlist is kept once, at its first position, with weight = number of occurrences.

Outputs (`<run_dir>/interactions/`): data (playlist_idx, track_idx, pos, weight), track_ids
(track_idx, track_uri, artist_uri, playlist_count), playlist_ids (playlist_idx, pid, name_norm,
kind = mpd | validation | blend_train | challenge, num_tracks = training interactions).
"""
from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from mpdrec.etl.split import TRAIN_DIR, training_entries
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join

log = logging.getLogger("mpdrec.index")


def dense_ids(df: DataFrame, order: list, name: str) -> DataFrame:
    """0-based ids in a total order (one sorted partition: fine for millions of rows)."""
    return df.withColumn(name, (F.row_number().over(Window.orderBy(*order)) - 1).cast("int"))


def build_interactions(spark: SparkSession, ingest_dir: str, validation_dir: str, out_dir: str,
                       files: int) -> dict[str, Any]:
    fs = HadoopFS(spark)
    challenge = fs.exists(join(ingest_dir, "challenge_tracks"))
    challenge_tracks = spark.read.parquet(join(ingest_dir, "challenge_tracks")) if challenge else None
    train = training_entries(spark.read.parquet(join(ingest_dir, "playlist_tracks")),
                             spark.read.parquet(join(validation_dir, "holdouts")), challenge_tracks).cache()

    artists = spark.read.parquet(join(ingest_dir, "tracks")).select("track_uri", "artist_uri")
    if challenge_tracks is not None:
        artists = (artists.unionByName(challenge_tracks.select("track_uri", "artist_uri"))
                   .groupBy("track_uri").agg(F.min("artist_uri").alias("artist_uri")))
    popularity = train.groupBy("track_uri").agg(F.countDistinct("pid").alias("playlist_count"))
    track_ids = dense_ids(popularity.join(artists, "track_uri", "left"),
                          [F.desc("playlist_count"), "track_uri"], "track_idx")
    track_ids.select("track_idx", "track_uri", "artist_uri", "playlist_count").write.mode("overwrite").parquet(
        join(out_dir, "track_ids"))

    categories = (spark.read.parquet(join(validation_dir, "categories")).select("pid", F.lit("validation").alias("v"))
                  .unionByName(spark.read.parquet(join(validation_dir, TRAIN_DIR, "categories"))
                               .select("pid", F.lit("blend_train").alias("v"))))
    pls = (spark.read.parquet(join(ingest_dir, "playlists")).select("pid", "name_norm")
           .join(F.broadcast(categories), "pid", "left")
           .select("pid", "name_norm", F.coalesce("v", F.lit("mpd")).alias("kind")))
    if challenge:
        pls = pls.unionByName(spark.read.parquet(join(ingest_dir, "challenge_playlists"))
                              .select("pid", "name_norm", F.lit("challenge").alias("kind")))
    per_playlist = train.groupBy("pid").agg(F.countDistinct("track_uri").alias("num_tracks"))
    playlist_ids = dense_ids(pls.join(per_playlist, "pid", "left").fillna(0, ["num_tracks"]), ["pid"], "playlist_idx")
    playlist_ids.select("playlist_idx", "pid", "name_norm", "kind", F.col("num_tracks").cast("int")).write.mode(
        "overwrite").parquet(join(out_dir, "playlist_ids"))

    tids = spark.read.parquet(join(out_dir, "track_ids")).select("track_uri", "track_idx")
    pids = spark.read.parquet(join(out_dir, "playlist_ids")).select("pid", "playlist_idx")
    data = (train.groupBy("pid", "track_uri").agg(F.min("pos").alias("pos"), F.count("*").cast("float").alias("weight"))
            .join(tids, "track_uri").join(pids, "pid")
            .select("playlist_idx", "track_idx", "pos", "weight"))
    parts = files or 4 * spark.sparkContext.defaultParallelism
    data.repartition(parts, "playlist_idx").sortWithinPartitions("playlist_idx", "pos").write.mode(
        "overwrite").parquet(join(out_dir, "data"))
    train.unpersist()
    rows = {t: spark.read.parquet(join(out_dir, t)).count() for t in ("data", "track_ids", "playlist_ids")}
    log.info("interactions: %s", ", ".join(f"{t}={n:,}" for t, n in rows.items()))
    return {"tables": rows, "files": parts}
