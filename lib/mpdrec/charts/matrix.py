"""The country x song matrices of the charts study, from the run's interactions table.

The table's interactions are (region, song) pairs weighted by summed streams (`jobs/ingest_table.py`
with `conf/charts.yaml`). Regions in `charts.exclude` (the charts' `global`) are not countries and are
dropped; the `top_songs` songs by total streams are kept; streams r become r' = log((1 + r) / eps).
A country with more than `min_songs` songs gets `validation_share` of them (drawn by a seeded hash of
country and song) moved from its training row to the validation matrix. Both matrices are dense
numpy arrays on the driver: the charts have at most a few dozen countries and `top_songs` columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mpdrec.config import ChartsConfig
from mpdrec.errors import InputError
from mpdrec.hashing import uniform
from mpdrec.io.paths import join


@dataclass(frozen=True)
class ChartsData:
    countries: list[str]
    songs: list[str]  # item keys (the charts' URLs), most streamed first
    titles: list[str]  # "" when the table has none
    artists: list[str]
    train: np.ndarray  # countries x songs, r' (0: not charted there, or moved to validation)
    validation: np.ndarray  # countries x songs, r' of the held-out songs


def load(spark: SparkSession, interactions_dir: str, cfg: ChartsConfig, seed: int) -> ChartsData:
    items = spark.read.parquet(join(interactions_dir, "item_ids"))
    missing = [c for c in (cfg.title, cfg.artist) if c not in items.columns]
    if missing:
        raise InputError(
            f"charts: {join(interactions_dir, 'item_ids')} has no attribute {missing}; ingest the table "
            f"with table.attributes including them (conf/charts.yaml does)"
        )
    users = spark.read.parquet(join(interactions_dir, "user_ids")).where(~F.col("user").isin(cfg.exclude))
    data = spark.read.parquet(join(interactions_dir, "data")).join(users.select("playlist_idx", "user"), "playlist_idx")
    top = (
        data.groupBy("track_idx")
        .agg(F.sum("weight").alias("streams"))
        .orderBy(F.desc("streams"), "track_idx")
        .limit(cfg.top_songs)
    )
    songs = (
        top.join(
            items.select(
                "track_idx", "item", F.col(f"`{cfg.title}`").alias("title"), F.col(f"`{cfg.artist}`").alias("artist")
            ),
            "track_idx",
        )
        .orderBy(F.desc("streams"), "track_idx")
        .toPandas()
    )
    if songs.empty:
        raise InputError(f"charts: no songs left in {interactions_dir} once {cfg.exclude} are excluded")
    pairs = (
        data.join(F.broadcast(top.select("track_idx")), "track_idx").select("user", "track_idx", "weight").toPandas()
    )
    countries = sorted(pairs["user"].unique())
    col = {t: j for j, t in enumerate(songs["track_idx"])}
    row = {c: i for i, c in enumerate(countries)}
    streams = np.zeros((len(countries), len(songs)))
    streams[pairs["user"].map(row).to_numpy(), pairs["track_idx"].map(col).to_numpy()] = pairs["weight"].to_numpy()
    scaled = np.where(streams > 0, np.log((1.0 + streams) / cfg.eps), 0.0)
    draw = uniform(seed, np.arange(len(countries))[:, None], np.arange(len(songs))[None, :])
    validation = np.zeros_like(scaled)
    for i in range(len(countries)):
        held = np.flatnonzero(scaled[i] > 0)
        if len(held) > cfg.min_songs:
            moved = held[np.argsort(draw[i, held], kind="stable")[: round(cfg.validation_share * len(held))]]
            validation[i, moved] = scaled[i, moved]
    return ChartsData(
        countries,
        list(songs["item"]),
        [t or "" for t in songs["title"]],
        [a or "" for a in songs["artist"]],
        scaled - validation,
        validation,
    )
