"""Stage 2 for any interaction table: dense ids and `<run_dir>/interactions/` in the layout the
MPD's build_interactions writes, so sample_negatives and train_ncf run on it unchanged (a user takes
a playlist's place, an item a track's).

Ids are deterministic, as for the MPD: items by (distinct users desc, item), so item 0 is the most
popular; users by their key. A (user, item) pair in several rows is one interaction whose weight
combines the rows' values (`table.combine`: sum for play counts, mean or max for ratings); `pos`
orders a user's interactions by time, so the leave-one-out set (and the ALS grid's held-out users)
hold out the latest. Without a time, or between equal times, the order is a seeded draw per (user,
item): ordered by item instead, "the latest" would be the user's least popular item (the highest
id), and every hold-out would test only the long tail.

Outputs: data (playlist_idx, track_idx, pos, weight, rows), item_ids (track_idx, item, users, the
attribute columns: the smallest value per item), user_ids (playlist_idx, user, items).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from mpdrec.config import Config, TableConfig
from mpdrec.etl.index import ROWS_PER_FILE, dense_ids
from mpdrec.etl.table_source import STAGE as TABLE_STAGE
from mpdrec.io.fs import FileStore
from mpdrec.io.paths import join
from mpdrec.spark import job_step, seeded_share
from mpdrec.upstream import run_after

log = logging.getLogger("mpdrec.table_index")
COMBINE = {"sum": F.sum, "mean": F.avg, "max": F.max}


def build_table_interactions(
    spark: SparkSession, t: TableConfig, table_dir: str, out_dir: str, files: int, seed: int
) -> dict[str, Any]:
    rows = spark.read.parquet(join(table_dir, "data"))
    pairs = (
        rows.groupBy("user", "item")
        .agg(
            COMBINE[t.combine]("value").cast("float").alias("weight"),
            F.count("*").cast("int").alias("rows"),
            F.min("time").alias("time"),
        )
        .cache()
    )
    items = pairs.groupBy("item").agg(F.count("*").alias("users"))
    if t.attributes:
        items = items.join(rows.groupBy("item").agg(*[F.min(a).alias(a) for a in t.attributes]), "item")
    with dense_ids(items, [F.desc("users"), "item"], "track_idx") as ids:
        ids.select("track_idx", "item", "users", *t.attributes).write.parquet(join(out_dir, "item_ids"))
    users = pairs.groupBy("user").agg(F.count("*").alias("items"))
    with dense_ids(users, ["user"], "playlist_idx") as ids:
        ids.select("playlist_idx", "user", "items").write.parquet(join(out_dir, "user_ids"))

    item_ids = spark.read.parquet(join(out_dir, "item_ids")).select("item", "track_idx")
    user_ids = spark.read.parquet(join(out_dir, "user_ids")).select("user", "playlist_idx")
    order = Window.partitionBy("playlist_idx").orderBy(
        F.col("time").asc_nulls_last(), seeded_share(seed, "playlist_idx", "track_idx"), "track_idx"
    )
    data = (
        pairs.join(item_ids, "item")
        .join(user_ids, "user")
        .withColumn("pos", (F.row_number().over(order) - 1).cast("int"))
        .select("playlist_idx", "track_idx", "pos", "weight", "rows")
    )
    n = pairs.count()
    parts = files or max(4 * spark.sparkContext.defaultParallelism, math.ceil(n / ROWS_PER_FILE))
    data.repartition(parts, "playlist_idx").sortWithinPartitions("playlist_idx", "pos").write.parquet(
        join(out_dir, "data")
    )
    pairs.unpersist()
    tables = {name: spark.read.parquet(join(out_dir, name)).count() for name in ("data", "item_ids", "user_ids")}
    log.info("table interactions: %s", ", ".join(f"{k}={v:,}" for k, v in tables.items()))
    return {"tables": tables, "files": parts, "combine": t.combine}


def is_table_run(fs: FileStore, run_dir: str) -> bool:
    """Whether `<run_dir>/interactions` was indexed from a table (this stage: it has `user_ids`) rather
    than from the MPD (`playlist_ids`): the ALS grid and the report then use the table's held-out
    users instead of a challenge."""
    return fs.exists(join(run_dir, "interactions", "user_ids"))


def run_table_index(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    """Index `<run_dir>/table` into `<run_dir>/interactions`; skipped when nothing it reads changed."""

    def build(table_dir: str, staging: str) -> dict[str, Any]:
        with job_step(spark, "ingest_table: ids and interactions"):
            return build_table_interactions(spark, cfg.table, table_dir, staging, cfg.interactions.files, cfg.seed)

    return run_after(
        spark, cfg, "interactions", TABLE_STAGE, "jobs/ingest_table.py", ("seed", "table", "interactions"), build, force
    )
