"""Spark ML ALS with explicit feedback (squared error on the observed ratings): the distributed
reference beside the baseline and the networks. Spark's ALS has no bias terms, so it fits the target
minus its training mean and adds the mean back: fitted on the raw 1..10 ratings, every factor must also
carry the offset, and a user with few ratings is pulled toward 0 rather than toward the mean (on the
generated Book-Crossing data, uncentred ALS had a worse validation RMSE than the plain mean and centred
ALS a better one, at regParam 0.5, the best of 0.1, 0.5, 1 and 2). Users or items without training
ratings get NaN (coldStartStrategy), which the shared fallback fills."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.explicit.targets import Target
from mpdrec.spark import fixed_layout, one_row


def predict(
    train: DataFrame,
    queries: DataFrame,
    target: Target,
    rank: int,
    reg_param: float,
    max_iter: int,
    seed: int,
    train_rows: int,
) -> DataFrame:
    """(user_idx, item_idx, prediction) for the query pairs, from ALS fitted on the target."""
    from pyspark.ml.recommendation import ALS

    als = ALS(
        rank=rank,
        regParam=reg_param,
        maxIter=max_iter,
        implicitPrefs=False,
        seed=seed,
        userCol="user_idx",
        itemCol="item_idx",
        ratingCol="target",
        coldStartStrategy="nan",
    )
    # a layout from the data alone: ALS seeds its factors per block, so the same rows fit the same model
    values = train.select("user_idx", "item_idx", target.column(F.col("rating")).alias("target"))
    mean = float(one_row(values.agg(F.avg("target")))[0])
    centred = values.withColumn("target", F.col("target") - F.lit(mean))
    rows = fixed_layout(centred, ["user_idx", "item_idx"], train_rows)
    model = als.fit(rows)
    return model.transform(queries.select("user_idx", "item_idx")).select(
        "user_idx", "item_idx", (F.col("prediction") + F.lit(mean)).alias("prediction")
    )
