"""Dense ids from a global sort (mpdrec.etl.index.dense_ids): the same ids as a row number over
the whole order, computed in several partitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mpdrec.etl.index import dense_ids


@pytest.fixture
def uncoalesced(spark: SparkSession):
    """Keep the sort's partitions apart, as at scale (AQE merges a small table's into one)."""
    key = "spark.sql.adaptive.coalescePartitions.enabled"
    before = str(spark.conf.get(key))
    spark.conf.set(key, "false")
    yield
    spark.conf.set(key, before)


def test_dense_ids_follow_the_total_order_across_partitions(spark: SparkSession, uncoalesced) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    pdf = pd.DataFrame(
        {"uri": [f"t{i:05d}" for i in rng.permutation(n)], "count": rng.integers(0, 30, n)}
    )  # many ties on count, broken by uri
    df = spark.createDataFrame(pdf).repartition(3)
    with dense_ids(df, [F.desc("count"), "uri"], "idx") as ids:
        assert ids.rdd.getNumPartitions() > 1
        got = ids.toPandas().sort_values("idx").reset_index(drop=True)
    expected = pdf.sort_values(["count", "uri"], ascending=[False, True]).reset_index(drop=True)
    assert got["idx"].tolist() == list(range(n))
    assert got["uri"].tolist() == expected["uri"].tolist()
    assert got.columns.tolist() == ["uri", "count", "idx"]


def test_dense_ids_of_an_empty_table(spark: SparkSession) -> None:
    df = spark.createDataFrame([], "pid long")
    with dense_ids(df, ["pid"], "idx") as ids:
        assert ids.count() == 0
