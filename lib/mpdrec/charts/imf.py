"""IMF: Spark ML's implicit ALS (confidence 1 + alpha x r', preference r' > 0) over the training matrix,
every grid point scored by EPR on train and validation; the best validation EPR is kept."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import SparkSession

from mpdrec.charts.epr import expected_percentile_rank
from mpdrec.charts.matrix import ChartsData
from mpdrec.config import ChartsConfig
from mpdrec.spark import fixed_layout


@dataclass(frozen=True)
class Factors:
    countries: np.ndarray  # countries x rank
    songs: np.ndarray  # songs x rank

    def scores(self) -> np.ndarray:
        return self.countries @ self.songs.T


def fit(
    spark: SparkSession, train: np.ndarray, rank: int, alpha: float, reg_param: float, max_iter: int, seed: int
) -> Factors:
    from pyspark.ml.recommendation import ALS

    rows, cols = np.nonzero(train)
    pairs = spark.createDataFrame(
        [(int(r), int(c), float(train[r, c])) for r, c in zip(rows, cols)], "country int, song int, rating double"
    )
    als = ALS(
        rank=rank,
        alpha=alpha,
        regParam=reg_param,
        maxIter=max_iter,
        implicitPrefs=True,
        seed=seed,
        userCol="country",
        itemCol="song",
        ratingCol="rating",
    )
    model = als.fit(fixed_layout(pairs, ["country", "song"], len(rows)))

    def matrix(df: Any, n: int) -> np.ndarray:
        out = np.zeros((n, rank))  # a country or song with no training entry keeps zeros
        for r in df.collect():
            out[r["id"]] = r["features"]
        return out

    return Factors(matrix(model.userFactors, train.shape[0]), matrix(model.itemFactors, train.shape[1]))


def grid(spark: SparkSession, data: ChartsData, cfg: ChartsConfig, seed: int) -> tuple[list[dict[str, Any]], Factors]:
    """Every point's EPRs, and the factors of the best validation EPR (the first of equals)."""
    points: list[dict[str, Any]] = []
    best: tuple[float, Factors] | None = None
    for rank in cfg.grid_rank:
        for alpha in cfg.grid_alpha:
            for reg in cfg.grid_reg_param:
                started = time.perf_counter()
                factors = fit(spark, data.train, rank, alpha, reg, cfg.max_iter, seed)
                s = factors.scores()
                point = {
                    "rank": rank,
                    "alpha": alpha,
                    "reg_param": reg,
                    "epr_train": expected_percentile_rank(s, data.train),
                    "epr_validation": expected_percentile_rank(s, data.validation, data.train > 0),
                    "seconds": round(time.perf_counter() - started, 2),
                }
                points.append(point)
                if best is None or point["epr_validation"] < best[0]:
                    best = (point["epr_validation"], factors)
    assert best is not None, "the config requires a value in each grid list"
    return points, best[1]
