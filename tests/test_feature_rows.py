"""Feature rows whose last columns are numpy steps run in the pass that reads them
(`mpdrec.rank.feature_rows`): the seed features, the NCF score and the blends' scores share one."""

from __future__ import annotations

import numpy as np
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StructField

from mpdrec.rank.feature_rows import ColumnStep, FeatureRows
from mpdrec.sorted_groups import group_starts


def _group_size() -> ColumnStep:
    """Each row's number of rows of its pid in the batch: right only where batches hold whole pids."""

    def bind():
        def add(cols):
            bounds = group_starts(cols["pid"])
            return {"group_rows": np.repeat(np.diff(bounds), np.diff(bounds))}

        return add

    return ColumnStep((StructField("group_rows", LongType(), False),), bind, whole_queries=True)


def _times(factor: str) -> ColumnStep:
    """track_idx + 1 times an earlier step's column."""

    def bind():
        def add(cols):
            return {"weighted": (cols["track_idx"] + 1.0) * cols[factor]}

        return add

    return ColumnStep((StructField("weighted", DoubleType(), False),), bind)


def _rows(spark):
    return spark.range(0, 60, numPartitions=3).select((F.col("id") % 7).alias("pid"), F.col("id").alias("track_idx"))


def test_steps_run_in_order_over_whole_queries(spark):
    features = FeatureRows(_rows(spark)).then(_group_size()).then(_times("group_rows"))
    assert [f.name for f in features.fields] == ["pid", "track_idx", "group_rows", "weighted"]
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "4")  # batches split the pids' rows
    try:
        got = features.to_frame().toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert list(got.columns) == ["pid", "track_idx", "group_rows", "weighted"]
    assert sorted(got.track_idx) == list(range(60))
    # a pid's rows in one partition (3 partitions of 20 consecutive ids): counted whole there
    per_partition = {(p, t // 20): None for p, t in zip(got.pid, got.track_idx)}
    expected_size = {
        key: sum(1 for t in range(key[1] * 20, key[1] * 20 + 20) if t % 7 == key[0]) for key in per_partition
    }
    for r in got.itertuples():
        assert r.group_rows == expected_size[(r.pid, r.track_idx // 20)]
        assert r.weighted == (r.track_idx + 1.0) * r.group_rows


def test_map_reads_the_steps_columns_and_may_drop_rows(spark):
    features = FeatureRows(_rows(spark)).then(_times("track_idx"))

    def bind():
        def best(cols):
            kept = cols["weighted"] > 100.0
            return {"track_idx": cols["track_idx"][kept], "weighted": cols["weighted"][kept]}

        return best

    got = features.map(bind, [features.field("track_idx"), features.field("weighted")]).toPandas()
    expected = {t: float(t * (t + 1)) for t in range(60)}
    assert dict(zip(got.track_idx, got.weighted)) == {t: w for t, w in expected.items() if w > 100.0}
