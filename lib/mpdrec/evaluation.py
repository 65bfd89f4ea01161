"""Stage 7: score each model's validation submission with the official metrics; write the report.

The submission CSV itself is scored (what would be uploaded), against `validation/ground_truth`,
overall and per challenge category. Tracks and artists are compared as 64-bit hashes of their URIs,
so 10,000 x 500 recommendations fit comfortably in the driver's memory.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.categories import CATEGORIES
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join, to_uri
from mpdrec.metrics.recsys2018 import score_recommendations

log = logging.getLogger("mpdrec.evaluate")
METRICS = ("r_precision", "ndcg", "clicks")


def submission_rows(spark: SparkSession, uri: str) -> DataFrame:
    """pid, rank, track_uri of a submission CSV (header and comment lines skipped)."""
    lines = spark.read.text(uri).where(~F.col("value").startswith("team_info") & ~F.col("value").startswith("#")
                                       & (F.length(F.trim("value")) > 0))
    parts = lines.select(F.split(F.regexp_replace("value", r"\s", ""), ",").alias("p"))
    return parts.select(F.col("p")[0].cast("long").alias("pid"),
                        F.posexplode(F.slice("p", 2, 1_000_000)).alias("rank", "track_uri"))


def _hashed(df: DataFrame) -> DataFrame:
    """pid, [rank,] track, artist: URIs as 64-bit hashes; an unknown artist is 0 (never a real
    artist's hash in practice), so the column stays int64 and artist credit keeps working."""
    return df.select("pid", *(["rank"] if "rank" in df.columns else []),
                     F.xxhash64("track_uri").alias("track"),
                     F.coalesce(F.when(F.col("artist_uri").isNotNull(), F.xxhash64("artist_uri")),
                                F.lit(0).cast("long")).alias("artist"))


@dataclass(frozen=True)
class ValidationTruth:
    """The validation challenge's hidden tracks and categories, loaded once for many scorings."""
    truth: pd.DataFrame  # pid, track, artist (hashed)
    categories: pd.DataFrame  # pid, category
    track_ids: DataFrame  # track_idx, track_uri, artist_uri

    @classmethod
    def load(cls, spark: SparkSession, run_dir: str) -> "ValidationTruth":
        truth = _hashed(spark.read.parquet(join(run_dir, "validation", "ground_truth"))).toPandas()
        categories = spark.read.parquet(join(run_dir, "validation", "categories")).select("pid", "category").toPandas()
        track_ids = spark.read.parquet(join(run_dir, "interactions", "track_ids")).select(
            "track_idx", "track_uri", "artist_uri")
        return cls(truth, categories, track_ids)

    def score_submission(self, spark: SparkSession, uri: str) -> dict[str, Any]:
        """Scores of a submission CSV (what would be uploaded)."""
        recs = submission_rows(spark, uri).join(self.track_ids.drop("track_idx"), "track_uri", "left")
        return score_recommendations(_hashed(recs).toPandas(), self.truth, self.categories)

    def score_ranking(self, ranked: DataFrame) -> dict[str, Any]:
        """Scores of a ranking (pid, rank, track_idx) before it is written, e.g. a grid-search point."""
        recs = ranked.select("pid", "rank", "track_idx").join(self.track_ids, "track_idx")
        return score_recommendations(_hashed(recs).toPandas(), self.truth, self.categories)


def markdown(report: dict[str, Any]) -> str:
    """report.md: overall table, then one table per metric with a column per category."""
    models = report["models"]
    out = ["# mpdrec report", "", f"Validation challenge: {report['validation']['playlists']} playlists, "
           f"{report['validation']['per_category']} per category. Clicks: lower is better.", "",
           "## Overall", "", "| model | R-precision | NDCG | clicks |", "| --- | --- | --- | --- |"]
    for name, m in models.items():
        o = m["overall"]
        out.append(f"| {name} | {o['r_precision']:.4f} | {o['ndcg']:.4f} | {o['clicks']:.2f} |")
    for metric in METRICS:
        out += ["", f"## {metric} by category", "",
                "| model | " + " | ".join(f"{c.id}: {c.label}" for c in CATEGORIES) + " |",
                "| --- " * (len(CATEGORIES) + 1) + "|"]
        for name, m in models.items():
            cells = [m["by_category"].get(str(c.id), {}).get(metric) for c in CATEGORIES]
            out.append(f"| {name} | " + " | ".join("" if v is None else f"{v:.4f}" for v in cells) + " |")
    return "\n".join(out) + "\n"


def evaluate(spark: SparkSession, run_dir_path: str, models: list[str]) -> dict[str, Any]:
    """Score rank/<model>/submission.csv for each model; write report.json and report.md."""
    fs, run_dir = HadoopFS(spark), to_uri(run_dir_path)
    validation = json.loads(fs.read_text(join(run_dir, "validation", "_manifest.json")))
    scorer = ValidationTruth.load(spark, run_dir)
    report: dict[str, Any] = {"validation": {k: validation[k] for k in ("playlists", "per_category", "by_category")},
                              "models": {}}
    for model in models:
        uri = join(run_dir, "rank", model, "submission.csv")
        report["models"][model] = scorer.score_submission(spark, uri)
        log.info("evaluate: %s %s", model, report["models"][model]["overall"])
    fs.write_text(join(run_dir, "report.json"), json.dumps(report, indent=2, sort_keys=True))
    fs.write_text(join(run_dir, "report.md"), markdown(report))
    return report
