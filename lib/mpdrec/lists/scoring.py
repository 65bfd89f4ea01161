"""Scoring a recommendation list against a held-out challenge with the official metrics: the report
scores the submissions of the validation challenge, and the ALS grid and the blend learn from the
blend-training one. Tracks and artists are compared as 64-bit hashes of their URIs, so 10,000 x 500
recommendations fit comfortably in the driver's memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.etl.split import TRAIN_DIR
from mpdrec.io.paths import join
from mpdrec.metrics.recsys2018 import per_playlist_scores, summarise

HELD_OUT = ("validation", "train")


def submission_rows(spark: SparkSession, uri: str) -> DataFrame:
    """pid, rank, track_uri of a submission CSV (header and comment lines skipped)."""
    lines = spark.read.text(uri).where(
        ~F.col("value").startswith("team_info") & ~F.col("value").startswith("#") & (F.length(F.trim("value")) > 0)
    )
    parts = lines.select(F.split(F.regexp_replace("value", r"\s", ""), ",").alias("p"))
    return parts.select(
        F.col("p")[0].cast("long").alias("pid"), F.posexplode(F.slice("p", 2, 1_000_000)).alias("rank", "track_uri")
    )


def _hashed(df: DataFrame) -> DataFrame:
    """pid, [rank,] track, artist: URIs as 64-bit hashes; an unknown artist is 0 (never a real
    artist's hash in practice), so the column stays int64 and artist credit keeps working."""
    return df.select(
        "pid",
        *(["rank"] if "rank" in df.columns else []),
        F.xxhash64("track_uri").alias("track"),
        F.coalesce(F.when(F.col("artist_uri").isNotNull(), F.xxhash64("artist_uri")), F.lit(0).cast("long")).alias(
            "artist"
        ),
    )


def challenge_dir(run_dir: str, challenge: str) -> str:
    """Where a held-out challenge lives: "validation" (what the report scores) or "train" (the
    blend-training challenge: what the second stage learns from and the ALS grid is chosen on)."""
    if challenge not in HELD_OUT:
        raise ValueError(f"unknown held-out challenge {challenge!r}: one of {HELD_OUT}")
    return join(run_dir, "validation") if challenge == "validation" else join(run_dir, "validation", TRAIN_DIR)


def hidden_track_ids(spark: SparkSession, held_out_dir: str, track_ids: DataFrame) -> DataFrame:
    """pid, track_idx of every hidden track of the held-out challenge in `held_out_dir`: what the
    blend and ALS's MPR are measured against by index rather than by URI."""
    return (
        spark.read.parquet(join(held_out_dir, "ground_truth"))
        .select("pid", "track_uri")
        .join(track_ids.select("track_uri", "track_idx"), "track_uri")
        .select("pid", "track_idx")
    )


@dataclass(frozen=True)
class ValidationTruth:
    """A held-out challenge's hidden tracks and categories, loaded once for many scorings."""

    truth: pd.DataFrame  # pid, track, artist (hashed)
    categories: pd.DataFrame  # pid, category
    track_ids: DataFrame  # track_idx, track_uri, artist_uri

    @classmethod
    def load(cls, spark: SparkSession, run_dir: str, challenge: str = "validation") -> ValidationTruth:
        """`challenge`: "validation" or "train" (`challenge_dir`)."""
        where = challenge_dir(run_dir, challenge)
        truth = _hashed(spark.read.parquet(join(where, "ground_truth"))).toPandas()
        categories = spark.read.parquet(join(where, "categories")).select("pid", "category").toPandas()
        track_ids = spark.read.parquet(join(run_dir, "interactions", "track_ids")).select(
            "track_idx", "track_uri", "artist_uri"
        )
        return cls(truth, categories, track_ids)

    def submission_scores(self, spark: SparkSession, uri: str) -> pd.DataFrame:
        """Per-playlist scores of a submission CSV (`per_playlist_scores`' frame)."""
        return self._per_playlist(
            submission_rows(spark, uri).join(self.track_ids.drop("track_idx"), "track_uri", "left")
        )

    def score_ranking(self, ranked: DataFrame) -> dict[str, Any]:
        """Scores of a ranking (pid, rank, track_idx) before it is written, e.g. a grid-search point."""
        return summarise(self.ranking_scores(ranked), self.categories)

    def ranking_scores(self, ranked: DataFrame) -> pd.DataFrame:
        """Per-playlist scores of a ranking (pid, rank, track_idx)."""
        return self._per_playlist(ranked.select("pid", "rank", "track_idx").join(self.track_ids, "track_idx"))

    def _per_playlist(self, recs: DataFrame) -> pd.DataFrame:
        """The official metrics of each of this challenge's playlists (recs of other pids ignored)."""
        hashed = _hashed(recs).toPandas()
        return per_playlist_scores(hashed[hashed["pid"].isin(self.categories["pid"])], self.truth)
