"""Popularity: the most played tracks of the training data (track_idx 0 is the most popular)."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.errors import InputError
from mpdrec.lists.inputs import Queries, RankingData


def recommend(data: RankingData, queries: Queries, n: int) -> DataFrame:
    """The n + (most seeds) most popular tracks for every query, so n remain once seeds are dropped."""
    need = n + queries.max_seeds
    if data.num_tracks < need:
        raise InputError(
            f"the training data has {data.num_tracks} distinct tracks; {n} recommendations per "
            f"playlist beyond up to {need - n} seeds need at least {need} (use more slices)"
        )
    top = data.track_ids.where(F.col("track_idx") < need).select(
        "track_idx", F.col("playlist_count").cast("double").alias("score")
    )
    return queries.playlists.select("pid").crossJoin(F.broadcast(top))
