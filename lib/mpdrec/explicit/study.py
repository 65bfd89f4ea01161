"""The explicit-ratings study as two stages over the run's interactions (jobs/explicit_ratings.py).

`explicit_split`: the seeded train / validation / test split (`mpdrec.explicit.split`).
`explicit`: every model on every target, scored on validation and test with RMSE, MAE, and the
accuracy and F1 of "recommend". First the sigmoid grid: the Jaccard baseline predicts the adjusted
target at each (a, b), and the best validation F1 picks the point every model's `adjusted` target
uses (one cheap aggregation per point; a network per point would be the grid times the fits). Then
per target: the user-mean and global-mean baselines, Jaccard, explicit ALS (Spark) and the networks
(one per loss). Every model's unpredictable ratings take the same fallback. Test F1 comes with a
bootstrap interval over the test ratings. Outputs: report.json, report.md and two figures.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from mpdrec.config import Config
from mpdrec.explicit import als_explicit, jaccard, networks, report
from mpdrec.explicit.arrays import Fallback, Ratings
from mpdrec.explicit.split import SPLITS, write_splits
from mpdrec.explicit.targets import Target, score
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import MANIFEST, join
from mpdrec.io.report import write_report
from mpdrec.spark import job_step
from mpdrec.upstream import TABLE_INTERACTIONS, run_after

log = logging.getLogger("mpdrec.explicit")
SPLIT_STAGE, STAGE = "explicit_split", "explicit"
RESAMPLES = 1000


def f1_interval(ratings: np.ndarray, predictions: np.ndarray, target: Target, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of F1 over the ratings (resampled with replacement)."""
    truth, said = ratings >= target.threshold, predictions >= target.cut
    rng = np.random.default_rng(seed)
    out = np.empty(RESAMPLES)
    for k in range(RESAMPLES):
        pick = rng.integers(0, len(truth), len(truth))
        t, s = truth[pick], said[pick]
        tp = np.sum(t & s)
        den = 2 * tp + np.sum(t ^ s)
        out[k] = 2 * tp / den if den else 0.0
    low, high = np.quantile(out, [0.025, 0.975])
    return float(low), float(high)


class _Study:
    def __init__(self, spark: SparkSession, cfg: Config, split_dir: str) -> None:
        self.cfg, self.e, self.seed = cfg, cfg.explicit, cfg.seed
        self.splits = {s: Ratings.read(split_dir, s) for s in SPLITS}
        self.num_users = int(max(r.users.max() for r in self.splits.values())) + 1
        self.num_items = int(max(r.items.max() for r in self.splits.values())) + 1
        self.train_df = spark.read.parquet(join(split_dir, "train")).persist(StorageLevel.MEMORY_AND_DISK)
        self.queries = (
            spark.read.parquet(join(split_dir, "validation"))
            .unionByName(spark.read.parquet(join(split_dir, "test")))
            .select("user_idx", "item_idx")
        )
        self.train_rows = len(self.splits["train"])

    def scored(
        self, model: str, target: Target, raw: dict[str, np.ndarray], fallback: Fallback, **extra: Any
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"model": model, "target": target.as_dict(), **extra}
        for name in ("validation", "test"):
            split = self.splits[name]
            predicted = fallback.fill(split, raw[name])
            cold = float(np.mean(~fallback.warm(split)))
            row[name] = score(split.ratings, predicted, target) | {"fallback_share": cold}
        low, high = f1_interval(
            self.splits["test"].ratings, fallback.fill(self.splits["test"], raw["test"]), target, self.seed
        )
        row["test"] |= {"f1_low": low, "f1_high": high}
        log.info(
            "explicit %s / %s%s: validation F1 %.4f RMSE %.4f; test F1 %.4f RMSE %.4f",
            model,
            target.name,
            f" / {extra['loss']}" if extra.get("loss") else "",
            row["validation"]["f1"],
            row["validation"]["rmse"],
            row["test"]["f1"],
            row["test"]["rmse"],
        )
        return row

    def from_spark(self, predicted: DataFrame) -> dict[str, np.ndarray]:
        table = predicted.toPandas()
        return {s: self.splits[s].aligned(table) for s in ("validation", "test")}

    def grid(self, votes: DataFrame) -> tuple[list[dict[str, Any]], Target]:
        points: list[dict[str, Any]] = []
        best: tuple[float, Target] | None = None
        for a in self.e.sigmoid_a:
            for b in self.e.sigmoid_b:
                target = Target("adjusted", self.e.threshold, a, b)
                fallback = Fallback.of(self.splits["train"], target, self.num_users, self.num_items)
                split = self.splits["validation"]
                predicted = fallback.fill(split, self.from_spark(jaccard.predict(votes, target))["validation"])
                points.append({"a": a, "b": b, **score(split.ratings, predicted, target)})
                if best is None or points[-1]["f1"] > best[0]:
                    best = (points[-1]["f1"], target)
        assert best is not None, "the config requires a and b values"
        return points, best[1]

    def rows_for(self, target: Target, votes: DataFrame) -> list[dict[str, Any]]:
        fallback = Fallback.of(self.splits["train"], target, self.num_users, self.num_items)
        empty = {s: np.full(len(self.splits[s]), np.nan) for s in ("validation", "test")}
        everyone = {s: np.zeros(len(self.splits[s])) for s in ("validation", "test")}
        global_only = Fallback(np.full(self.num_users, np.nan), fallback.global_mean, fallback.known_items)
        rows = [
            self.scored("global_mean", target, everyone, global_only),
            self.scored("user_mean", target, empty, fallback),
        ]
        timed: list[tuple[str, Callable[[], dict[str, Any]], dict[str, Any]]] = []
        if "jaccard" in self.e.models:
            timed.append(("jaccard", lambda: self.from_spark(jaccard.predict(votes, target)), {}))
        if "als" in self.e.models:
            timed.append(
                (
                    "als",
                    lambda: self.from_spark(
                        als_explicit.predict(
                            self.train_df,
                            self.queries,
                            target,
                            self.e.als_rank,
                            self.e.als_reg_param,
                            self.e.als_max_iter,
                            self.seed,
                            self.train_rows,
                        )
                    ),
                    {},
                )
            )
        for kind in (m for m in self.e.models if m in networks.NETWORKS):
            for loss in ["cross-entropy"] if target.kind == "binary" else self.e.losses:
                timed.append(
                    (
                        kind,
                        partial(
                            networks.fit_predict,
                            kind,
                            loss,
                            target,
                            self.splits["train"],
                            self.splits["validation"],
                            self.splits["test"],
                            fallback,
                            self.num_users,
                            self.num_items,
                            self.e,
                            self.seed,
                        ),
                        {"loss": loss},
                    )
                )
        for model, run, extra in timed:
            started = time.perf_counter()
            raw = run()
            info = {k: v for k, v in raw.items() if k not in ("validation", "test")}
            rows.append(
                self.scored(
                    model, target, raw, fallback, **extra, **info, seconds=round(time.perf_counter() - started, 2)
                )
            )
        return rows


def _always_recommend_f1(threshold: float, splits: dict[str, Ratings]) -> dict[str, float]:
    """F1 of recommending every rating (what a model must beat on F1)."""
    out = {}
    for name in ("validation", "test"):
        positive = float(np.mean(splits[name].ratings >= threshold))
        out[name] = 2 * positive / (1 + positive) if positive else 0.0
    return out


def run_study(spark: SparkSession, cfg: Config, split_dir: str, out_dir: str, tables: dict[str, int]) -> dict[str, Any]:
    study = _Study(spark, cfg, split_dir)
    e = cfg.explicit
    with job_step(spark, "explicit: Jaccard similarities"):
        sims = jaccard.similarities(study.train_df, e.jaccard_max_raters, cfg.seed)
        votes = jaccard.neighbour_votes(study.train_df, study.queries, sims)
        log.info(
            "explicit: %d neighbour votes for %d query ratings",
            votes.count(),
            len(study.splits["validation"]) + len(study.splits["test"]),
        )
    with job_step(spark, "explicit: sigmoid grid"):
        grid, best = study.grid(votes)
    targets = [
        {"original": Target("original", e.threshold), "adjusted": best, "binary": Target("binary", e.threshold)}[k]
        for k in e.targets
    ]
    results = []
    for target in targets:
        with job_step(spark, f"explicit: models on {target.name}"):
            results += study.rows_for(target, votes)
    votes.unpersist()
    study.train_df.unpersist()
    body = {
        "tables": tables,
        "threshold": e.threshold,
        "sigmoid": {"a": best.a, "b": best.b},
        "grid": grid,
        "always_recommend_f1": _always_recommend_f1(e.threshold, study.splits),
        "results": results,
    }
    figures = {"report_explicit_f1.png": report.f1_figure(body), "report_explicit_grid.png": report.grid_figure(body)}
    write_report(HadoopFS(spark), out_dir, body, report.markdown(body), figures)
    return body


def run_explicit_split(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    return run_after(
        spark,
        cfg,
        SPLIT_STAGE,
        *TABLE_INTERACTIONS,
        ("seed", "explicit"),
        lambda interactions, staging: write_splits(spark, interactions, staging, cfg.explicit, cfg.seed),
        force,
    )


def run_explicit(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    def build(split_dir: str, staging: str) -> dict[str, Any]:
        tables = json.loads(HadoopFS(spark).read_text(join(split_dir, MANIFEST)))["tables"]
        return run_study(spark, cfg, split_dir, staging, tables)

    return run_after(spark, cfg, STAGE, SPLIT_STAGE, "jobs/explicit_ratings.py", ("seed", "explicit"), build, force)
