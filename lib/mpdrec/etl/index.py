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
import math
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.etl.split import TRAIN_DIR, training_entries
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join

log = logging.getLogger("mpdrec.index")
ROWS_PER_FILE = 2_000_000  # interactions per Parquet file at most, about (33 files for the full MPD's 66M)


@contextmanager
def dense_ids(df: DataFrame, order: list[str | Column], name: str) -> Iterator[DataFrame]:
    """`df` with `name`: 0-based ids in `order`, which must be unique per row, assigned in parallel.

    A window over the whole table (row_number without partitionBy) moves every row into one task
    (2.26M tracks at full MPD, and a WindowExec warning in the log). A global sort range-partitions
    the rows instead: each sorted partition holds a contiguous run of the order, so a row's id is the
    rows of the partitions before its own plus its place in its own. The sorted rows are persisted
    while the caller uses them, so that the counts and the ids come from one partitioning (the range
    bounds are sampled when the sort runs).
    """
    ranked = (
        df.orderBy(*order)
        .withColumn("_part", F.spark_partition_id())
        .withColumn("_place", F.monotonically_increasing_id())
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        counts: dict[int, int] = dict(ranked.groupBy("_part").count().collect())
        sizes = [counts.get(p, 0) for p in range(max(counts, default=-1) + 1)]
        offsets = F.array(*[F.lit(o) for o in [0, *accumulate(sizes)][:-1]] or [F.lit(0)])
        # monotonically_increasing_id is (partition << 33) + the row's place in its partition
        local = F.col("_place") - F.shiftleft(F.col("_part").cast("long"), 33)
        yield ranked.select(*df.columns, (offsets[F.col("_part")] + local).cast("int").alias(name))
    finally:
        ranked.unpersist()


def build_interactions(
    spark: SparkSession, ingest_dir: str, validation_dir: str, out_dir: str, files: int
) -> dict[str, Any]:
    fs = HadoopFS(spark)
    challenge = fs.exists(join(ingest_dir, "challenge_tracks"))
    challenge_tracks = spark.read.parquet(join(ingest_dir, "challenge_tracks")) if challenge else None
    train = training_entries(
        spark.read.parquet(join(ingest_dir, "playlist_tracks")),
        spark.read.parquet(join(validation_dir, "holdouts")),
        challenge_tracks,
    ).cache()

    artists = spark.read.parquet(join(ingest_dir, "tracks")).select("track_uri", "artist_uri")
    if challenge_tracks is not None:
        artists = (
            artists.unionByName(challenge_tracks.select("track_uri", "artist_uri"))
            .groupBy("track_uri")
            .agg(F.min("artist_uri").alias("artist_uri"))
        )
    popularity = train.groupBy("track_uri").agg(F.countDistinct("pid").alias("playlist_count"))
    with dense_ids(
        popularity.join(artists, "track_uri", "left"), [F.desc("playlist_count"), "track_uri"], "track_idx"
    ) as track_ids:
        track_ids.select("track_idx", "track_uri", "artist_uri", "playlist_count").write.mode("overwrite").parquet(
            join(out_dir, "track_ids")
        )

    categories = (
        spark.read.parquet(join(validation_dir, "categories"))
        .select("pid", F.lit("validation").alias("v"))
        .unionByName(
            spark.read.parquet(join(validation_dir, TRAIN_DIR, "categories")).select(
                "pid", F.lit("blend_train").alias("v")
            )
        )
    )
    pls = (
        spark.read.parquet(join(ingest_dir, "playlists"))
        .select("pid", "name_norm")
        .join(F.broadcast(categories), "pid", "left")
        .select("pid", "name_norm", F.coalesce("v", F.lit("mpd")).alias("kind"))
    )
    if challenge:
        pls = pls.unionByName(
            spark.read.parquet(join(ingest_dir, "challenge_playlists")).select(
                "pid", "name_norm", F.lit("challenge").alias("kind")
            )
        )
    per_playlist = train.groupBy("pid").agg(F.countDistinct("track_uri").alias("num_tracks"))
    with dense_ids(pls.join(per_playlist, "pid", "left").fillna(0, ["num_tracks"]), ["pid"], "playlist_idx") as ids:
        ids.select("playlist_idx", "pid", "name_norm", "kind", F.col("num_tracks").cast("int")).write.mode(
            "overwrite"
        ).parquet(join(out_dir, "playlist_ids"))

    tids = spark.read.parquet(join(out_dir, "track_ids")).select("track_uri", "track_idx")
    pids = spark.read.parquet(join(out_dir, "playlist_ids")).select("pid", "playlist_idx")
    data = (
        train.groupBy("pid", "track_uri")
        .agg(F.min("pos").alias("pos"), F.count("*").cast("float").alias("weight"))
        .join(tids, "track_uri")
        .join(pids, "pid")
        .select("playlist_idx", "track_idx", "pos", "weight")
    )
    # about four per core seen at start, and at least one per ROWS_PER_FILE rows: under dynamic
    # allocation a job starts with about 2 cores, and 66M interactions in 8 files cap every reader
    parts = files or max(4 * spark.sparkContext.defaultParallelism, math.ceil(train.count() / ROWS_PER_FILE))
    data.repartition(parts, "playlist_idx").sortWithinPartitions("playlist_idx", "pos").write.mode("overwrite").parquet(
        join(out_dir, "data")
    )
    train.unpersist()
    rows = {t: spark.read.parquet(join(out_dir, t)).count() for t in ("data", "track_ids", "playlist_ids")}
    log.info("interactions: %s", ", ".join(f"{t}={n:,}" for t, n in rows.items()))
    return {"tables": rows, "files": parts}
