"""Predicting a playlist's `num_followers` from its features, the MPD study, in Spark ML over `<run_dir>/ingest`.

Features per playlist: number of tracks, albums, artists and edits, mean track duration (minutes),
collaborative, the share of distinct artists and albums among the tracks, and its most common artist
(ties to the smaller URI), one-hot over the `top_artists` commonest such artists (the rest share
"other"). A seeded `test_share` of playlists (by pid hash) is held out. Followers are heavy-tailed
(most playlists have 1), so with `log_target` the models fit log(1 + followers) and predictions are
mapped back. Models: the mean (the reference), linear regression, the lasso (L1) and gradient-boosted
trees; RMSE, MAE and R^2 on the held-out playlists, on followers and on the log scale; the linear
models' coefficients (on standardised features) and the trees' feature importances.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from mpdrec.config import Config, FollowersConfig
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join
from mpdrec.io.report import write_report
from mpdrec.report_plots import figure, png
from mpdrec.spark import fixed_layout, job_step, one_row, seeded_share
from mpdrec.upstream import INGEST, run_after

STAGE = "followers"
NUMERIC = (
    "num_tracks",
    "num_albums",
    "num_artists",
    "num_edits",
    "mean_track_minutes",
    "collaborative",
    "artist_share",
    "album_share",
)


def features(playlists: DataFrame, entries: DataFrame, top_artists: int) -> tuple[DataFrame, list[str]]:
    """(pid, followers, the numeric features, top_artist) and the artists kept for the one-hot."""
    counts = entries.groupBy("pid", "artist_uri").agg(F.count("*").alias("n"))
    first = Window.partitionBy("pid").orderBy(F.desc("n"), "artist_uri")
    top = (
        counts.withColumn("k", F.row_number().over(first))
        .where("k = 1")
        .select("pid", F.col("artist_uri").alias("top"))
    )
    kept = [r["top"] for r in top.groupBy("top").count().orderBy(F.desc("count"), "top").limit(top_artists).collect()]
    rows = playlists.join(top, "pid", "left").select(
        "pid",
        F.col("num_followers").cast("double").alias("followers"),
        *[F.col(c).cast("double").alias(c) for c in ("num_tracks", "num_albums", "num_artists", "num_edits")],
        (F.col("duration_ms") / F.greatest(F.col("num_tracks"), F.lit(1)) / 60000.0).alias("mean_track_minutes"),
        F.col("collaborative").cast("double").alias("collaborative"),
        (F.col("num_artists") / F.greatest(F.col("num_tracks"), F.lit(1))).alias("artist_share"),
        (F.col("num_albums") / F.greatest(F.col("num_tracks"), F.lit(1))).alias("album_share"),
        F.when(F.col("top").isin(kept), F.col("top")).otherwise(F.lit("other")).alias("top_artist"),
    )
    return rows, kept


def _slot_names(scored: DataFrame) -> list[str]:
    """The assembled feature vector's slot names, from Spark ML's column metadata (the one-hot's
    levels are named there, whatever the indexer's order and the dropped level)."""
    attrs = scored.schema["raw_features"].metadata["ml_attr"]["attrs"]
    slots = sorted((a["idx"], a["name"]) for group in attrs.values() for a in group)
    return [name.replace("artist_onehot_", "top_artist=") for _, name in slots]


def _scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    err = pred - truth
    total = float(np.sum((truth - truth.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err**2)) / total if total else float("nan"),
    }


def _figure(body: dict[str, Any]) -> bytes:
    """Held-out log-scale RMSE per model, and the lasso's largest coefficients."""
    fig, axes = figure(2, 11)
    names = list(body["results"])
    axes[0][0].bar(names, [body["results"][m]["log"]["rmse"] for m in names], color="tab:blue")
    axes[0][0].set_ylabel("held-out RMSE of log(1 + followers)" if body["log_target"] else "held-out RMSE")
    weights = list(body["coefficients"]["lasso"].items())[:10][::-1]
    axes[0][1].barh([k[-40:] for k, _ in weights], [v for _, v in weights], color="tab:green")
    axes[0][1].set_xlabel("lasso coefficient (standardised features)")
    axes[0][1].tick_params(axis="y", labelsize=7)
    return png(fig)


def run_study(spark: SparkSession, cfg: Config, ingest_dir: str, out_dir: str) -> dict[str, Any]:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
    from pyspark.ml.regression import GBTRegressor, LinearRegression

    f: FollowersConfig = cfg.followers
    rows, kept = features(
        spark.read.parquet(join(ingest_dir, "playlists")),
        spark.read.parquet(join(ingest_dir, "playlist_tracks")),
        f.top_artists,
    )
    label = F.log1p("followers") if f.log_target else F.col("followers")
    rows = rows.withColumn("label", label).withColumn("test", seeded_share(cfg.seed, "pid") < f.test_share).cache()
    train, test = rows.where(~F.col("test")), rows.where(F.col("test"))
    n_train = train.count()
    train = fixed_layout(train, ["pid"], n_train)
    prep: list[Any] = [
        StringIndexer(
            inputCol="top_artist", outputCol="artist_index", stringOrderType="alphabetAsc", handleInvalid="keep"
        ),
        OneHotEncoder(inputCol="artist_index", outputCol="artist_onehot", dropLast=True),
        VectorAssembler(inputCols=[*NUMERIC, "artist_onehot"], outputCol="raw_features"),
        StandardScaler(inputCol="raw_features", outputCol="features", withMean=True, withStd=True),
    ]
    models: dict[str, Any] = {
        "linear": LinearRegression(regParam=0.0),
        "lasso": LinearRegression(regParam=f.lasso_reg, elasticNetParam=1.0),
        "gbt": GBTRegressor(maxIter=f.gbt_trees, maxDepth=f.gbt_depth, seed=cfg.seed),
    }
    truth = test.orderBy("pid").select("followers", "label").toPandas()
    mean_label = float(one_row(train.agg(F.avg("label")))[0])

    def back(x: np.ndarray) -> np.ndarray:
        return np.expm1(x) if f.log_target else x

    results = {
        "mean": {
            "log": _scores(np.full(len(truth), mean_label), truth["label"].to_numpy()),
            "followers": _scores(back(np.full(len(truth), mean_label)), truth["followers"].to_numpy()),
        }
    }
    explained: dict[str, Any] = {}
    with job_step(spark, "followers: fit the models"):
        for name, model in models.items():
            fitted = Pipeline(stages=[*prep, model]).fit(train)
            scored = fitted.transform(test)
            pred = scored.orderBy("pid").select("prediction").toPandas()["prediction"].to_numpy()
            results[name] = {
                "log": _scores(pred, truth["label"].to_numpy()),
                "followers": _scores(back(pred), truth["followers"].to_numpy()),
            }
            names = _slot_names(scored)
            last: Any = fitted.stages[-1]  # the fitted regression: its coefficients or importances
            weights = last.coefficients.toArray() if name != "gbt" else last.featureImportances.toArray()
            explained[name] = dict(sorted(zip(names, map(float, weights)), key=lambda kv: -abs(kv[1]))[:15])
    rows.unpersist()
    body = {
        "train": n_train,
        "test": len(truth),
        "log_target": f.log_target,
        "results": results,
        "coefficients": {k: v for k, v in explained.items() if k != "gbt"},
        "importances": explained["gbt"],
    }
    lines = [
        "# Predicting num_followers",
        "",
        f"{n_train:,} training and {len(truth):,} held-out playlists; "
        f"models fit {'log(1 + followers)' if f.log_target else 'followers'}.",
        "",
        "| model | RMSE | MAE | R^2 | RMSE (log) | MAE (log) | R^2 (log) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        a, b = r["followers"], r["log"]
        lines.append(
            f"| {name} | {a['rmse']:.3f} | {a['mae']:.3f} | {a['r2']:.4f} | {b['rmse']:.4f} | {b['mae']:.4f} | "
            f"{b['r2']:.4f} |"
        )
    for name, weights in explained.items():
        kind = "importances" if name == "gbt" else "coefficients (standardised features)"
        lines += ["", f"## {name}: {kind}", ""] + [f"- {k}: {v:+.4f}" for k, v in weights.items()]
    write_report(
        HadoopFS(spark),
        out_dir,
        body,
        "\n".join([*lines, "", "![followers](report_followers.png)", ""]),
        {"report_followers.png": _figure(body)},
    )
    return body


def run_followers(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    return run_after(
        spark,
        cfg,
        STAGE,
        *INGEST,
        ("seed", "followers"),
        lambda ingest, staging: run_study(spark, cfg, ingest, staging),
        force,
    )
