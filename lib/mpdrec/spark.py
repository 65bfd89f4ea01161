"""The SparkSession every job uses, configured from the `spark` config section."""
from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from typing import Iterator

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.config import SparkConfig

DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    # Spark deletes a shuffle's files only once the driver's garbage collector has collected its
    # dependency; a driver that allocates little may not collect for Spark's default 30 minutes,
    # while an iterative job (ALS) leaves a shuffle per iteration on local disk.
    "spark.cleaner.periodicGC.interval": "2min",
}


def build_spark(cfg: SparkConfig, app_name: str) -> SparkSession:
    """Session from config; in local mode the Python workers run this very interpreter (the venv)."""
    builder = SparkSession.builder.appName(app_name)
    conf = {**DEFAULT_CONF, **cfg.conf}
    if cfg.master:
        builder = builder.master(cfg.master)
        if cfg.master.startswith("local"):
            # PySpark picks the workers' interpreter from PYSPARK_PYTHON (default: `python3` on
            # PATH, often not the venv); in local mode they must run this interpreter.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def job_step(spark: SparkSession, description: str) -> Iterator[None]:
    """Name the Spark jobs of a step, so the Spark UI shows which stage and step is running."""
    spark.sparkContext.setJobDescription(description)
    try:
        yield
    finally:
        spark.sparkContext.setJobDescription(None)


ROWS_PER_FIT_PARTITION = 250_000
SHARE_BUCKETS = 1 << 30


def seeded_share(seed: int, *cols: str) -> Column:
    """A uniform draw in [0, 1) per row from a hash of (seed, cols): a seeded split or sample that
    depends on the row alone, not on partitioning, executors or retries."""
    return F.pmod(F.xxhash64(F.lit(seed), *cols), F.lit(SHARE_BUCKETS)) / F.lit(float(SHARE_BUCKETS))


def fixed_layout(df: DataFrame, keys: list[str], rows: int) -> DataFrame:
    """`df` hash-partitioned on `keys` into ceil(rows / 250,000) partitions, each sorted by `keys`.

    Spark ML's estimators sample per partition (tree split candidates, k-means|| seeds) and sum in
    partition order, so a model follows how its input happens to be partitioned and ordered: local
    mode and a cluster fitted different models from the same rows. With a layout that depends on the
    data alone (`keys` unique per row, `rows` its row count), the same config fits the same model anywhere.
    """
    return df.repartition(max(1, math.ceil(rows / ROWS_PER_FIT_PARTITION)), *keys).sortWithinPartitions(*keys)
