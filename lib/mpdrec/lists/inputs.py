"""What every model reads: the training tables and the query playlists, as DataFrames.

One interface for all models (in the spirit of `implicit`'s recommend): a model is a function
`(RankingData, Queries, n) -> DataFrame(pid, track_idx, score)`, higher score first. It may return
seeds or fewer than n rows; `mpdrec.lists.assemble` drops seeds, dedupes and fills to 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.csr import Csr, csr, distinct_rows
from mpdrec.io.paths import join
from mpdrec.spark import one_row


@dataclass(frozen=True)
class RankingData:
    interactions: DataFrame  # playlist_idx, track_idx, pos, weight
    track_ids: DataFrame  # track_idx, track_uri, artist_uri, playlist_count
    playlist_ids: DataFrame  # playlist_idx, pid, name_norm, kind, num_tracks
    num_tracks: int  # track ids are 0..num_tracks-1
    _broadcasts: dict[str | int, Broadcast] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, spark: SparkSession, interactions_dir: str) -> RankingData:
        read = lambda t: spark.read.parquet(join(interactions_dir, t))  # noqa: E731
        track_ids = read("track_ids")
        return cls(read("data"), track_ids, read("playlist_ids"), track_ids.count())

    def shared(self, table: str) -> Broadcast:
        """One of the driver-side tables below (e.g. "playlist_tracks") broadcast to the executors,
        once for every source and feature that reads it, until `release`."""
        if table not in self._broadcasts:
            self._broadcasts[table] = self.interactions.sparkSession.sparkContext.broadcast(getattr(self, table))
        return self._broadcasts[table]

    def broadcast(self, value: Any) -> Broadcast:
        """`value` (a query set's lookups) broadcast to the executors until `release`."""
        made = self.interactions.sparkSession.sparkContext.broadcast(value)
        self._broadcasts[id(made)] = made
        return made

    def release(self) -> None:
        """Destroys the broadcasts made through `shared` and `broadcast`, on the driver and every
        executor, once nothing that reads them will run again (a challenge's lists and features are
        done): Spark otherwise keeps each until the context stops, hundreds of MB per challenge at
        full MPD scale."""
        for made in self._broadcasts.values():
            made.destroy()
        self._broadcasts.clear()

    @cached_property
    def track_uris(self) -> np.ndarray:
        """track_uri by track_idx, on the driver, read once: every submission's URIs are looked up
        here rather than joined in Spark (2.3M strings, about 200 MB, for the full MPD)."""
        table = self.track_ids.select("track_idx", "track_uri").toPandas()
        uris = np.empty(self.num_tracks, dtype=object)
        uris[table["track_idx"].to_numpy()] = table["track_uri"].to_numpy()
        return uris

    @cached_property
    def playlist_tracks(self) -> Csr:
        """Each training playlist's tracks (CSR by playlist_idx), on the driver, built once for the
        co-occurrence source and the seed features (a few hundred MB for the full MPD)."""
        playlists = (one_row(self.interactions.agg(F.max("playlist_idx")))[0] or 0) + 1
        return csr(self.interactions, "playlist_idx", "track_idx", playlists)

    @cached_property
    def track_artists(self) -> np.ndarray:
        """Each track's artist as a dense code 0..artists-1 (by track_idx), on the driver: codes of
        the artists' URI hashes, so no Spark window ranks 300k artists in one task (9 MB for the full
        MPD)."""
        table = self.track_ids.select("track_idx", F.xxhash64("artist_uri").alias("artist")).toPandas()
        _, codes = np.unique(table["artist"].to_numpy(), return_inverse=True)
        artists = np.zeros(self.num_tracks, np.int32)
        artists[table["track_idx"].to_numpy()] = codes
        return artists

    @cached_property
    def playlist_artists(self) -> Csr:
        """Each training playlist's distinct artists (CSR by playlist_idx over `track_artists`
        codes), from `playlist_tracks`: what the seed features count artist co-occurrence over."""
        return distinct_rows(self.playlist_tracks, self.track_artists)


@dataclass(frozen=True)
class Queries:
    playlists: DataFrame  # pid, playlist_idx (null if unknown), name_norm (nullable), category, num_samples
    seeds: DataFrame  # pid, track_idx
    max_seeds: int  # most seeds of any query playlist: lists are cut at n + max_seeds before seeds go
    seed_positions: DataFrame | None = None  # pid, track_idx, pos (its first position among the seeds)

    @classmethod
    def from_challenge(cls, data: RankingData, challenge_playlists: DataFrame, challenge_tracks: DataFrame) -> Queries:
        """Queries from challenge tables (the real challenge or the validation one: same parser)."""
        playlists = challenge_playlists.select("pid", "name_norm", "category", "num_samples").join(
            data.playlist_ids.select("pid", "playlist_idx"), "pid", "left"
        )
        positions = (
            challenge_tracks.select("pid", "pos", "track_uri")
            .join(data.track_ids.select("track_uri", "track_idx"), "track_uri")
            .groupBy("pid", "track_idx")
            .agg(F.min("pos").alias("pos"))
        )
        seeds = positions.select("pid", "track_idx").cache()
        most = one_row(seeds.groupBy("pid").count().agg(F.max("count")))[0]
        return cls(playlists.cache(), seeds, int(most or 0), positions)

    @classmethod
    def load(cls, spark: SparkSession, data: RankingData, tables_dir: str) -> Queries:
        """Queries from a directory holding challenge_playlists and challenge_tracks (ingest's output)."""
        return cls.from_challenge(
            data,
            spark.read.parquet(join(tables_dir, "challenge_playlists")),
            spark.read.parquet(join(tables_dir, "challenge_tracks")),
        )
