"""The SparkSession every job uses, configured from the `spark` config section."""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from mpdrec.config import SparkConfig

log = logging.getLogger("mpdrec.progress")

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


PROGRESS_EVERY_S = 60.0


def running_stages(spark: SparkSession) -> str:
    """The active Spark stages' task counts, e.g. "stage 12: 35/64 tasks" ("" when none runs)."""
    tracker = spark.sparkContext.statusTracker()
    infos = [tracker.getStageInfo(s) for s in sorted(tracker.getActiveStageIds())]
    return ", ".join(f"stage {i.stageId}: {i.numCompletedTasks}/{i.numTasks} tasks" for i in infos if i)


@contextmanager
def ticking(every: float, tick: Callable[[float], None]) -> Iterator[None]:
    """While the block runs, `tick(seconds since it began)` every `every` seconds on a thread of its
    own; an exception in `tick` (the session stopping) ends the ticks, not the block."""
    done, started = threading.Event(), time.monotonic()

    def run() -> None:
        while not done.wait(every):
            try:
                tick(time.monotonic() - started)
            except Exception:  # progress is not worth an error
                return

    thread = threading.Thread(target=run, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextmanager
def job_step(spark: SparkSession, description: str, every: float = PROGRESS_EVERY_S) -> Iterator[None]:
    """Name the Spark jobs of a step, so the Spark UI shows which stage and step is running, and
    while it runs log every `every` seconds, at INFO, how long it has run and its stages' tasks: at
    full MPD size a step can run for many minutes, and a user without the UI sees it move."""

    def heartbeat(seconds: float) -> None:
        stages = running_stages(spark)
        log.info("%s: running for %.0fs%s", description, seconds, f" ({stages})" if stages else "")

    spark.sparkContext.setJobDescription(description)
    try:
        with ticking(every, heartbeat):
            yield
    finally:
        spark.sparkContext.setJobDescription(None)  # type: ignore[arg-type]  # None clears it; the stub says str


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
    return df.repartition(fit_partitions(rows), *keys).sortWithinPartitions(*keys)


def fit_partitions(rows: int) -> int:
    """How many partitions a model's `rows` fit rows are laid out in: ceil(rows / 250,000)."""
    return max(1, math.ceil(rows / ROWS_PER_FIT_PARTITION))


def one_row(df: DataFrame) -> Row:
    """The first row of `df`: an aggregate's only row, or the first of rows known to exist. Spark's
    `first()` gives None for an empty frame; that is a bug here, so it is an error, not a None."""
    row = df.first()
    if row is None:
        raise RuntimeError("expected at least one row, found an empty DataFrame")
    return row
