"""Stage 3: the neural models' training positives, sharded by playlist, and the leave-one-out set.

Negatives are not written: the NCF input pipeline draws k fresh ones per positive every epoch
(`mpdrec.negative_sampling`), against the positives of the playlists its rank holds. Written sets
grew with the epochs (at full MPD, 330M rows per epoch set at k=4), and one set repeated over the
epochs trained a worse model on the real sample. So every playlist's training tracks go to one shard
(`shard=<s>/`, by a seeded hash of the playlist), a Horovod rank reads whole shards, and it holds all
the positives its draws must avoid.

Leave-one-out set (the NCF paper's protocol): for up to `eval_playlists` playlists, chosen by a
seeded hash, the last track (highest position, the paper's "latest interaction") is held out of the
training rows and written to `eval/` with `eval_negatives` distinct tracks that are none of the
playlist's positives. The trainer never draws a held-out track as a negative either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.errors import InputError
from mpdrec.hashing import uniform

log = logging.getLogger("mpdrec.negatives")
EVAL_STREAM = -1  # epoch key of the leave-one-out draws (training epochs are 0, 1, ...)
EVAL_SCHEMA = "playlist_idx int, track_idx int, negatives array<int>"


def sample_eval_negatives(playlist: int, positives: np.ndarray, num_tracks: int, n: int, seed: int) -> np.ndarray:
    """`n` distinct tracks, uniform over those that are none of the playlist's `positives` (its held-out
    track included): the candidates its held-out track is ranked against."""
    if num_tracks - len(np.unique(positives)) < n:
        raise ValueError(
            f"playlist {playlist}: fewer than {n} tracks are not among its positives; lower negatives.eval_negatives"
        )
    chosen = np.empty(0, dtype=np.int64)
    rnd = 0
    while len(chosen) < n:
        u = uniform(seed, EVAL_STREAM, playlist, np.arange(2 * n, dtype=np.int64), rnd)
        drawn = np.minimum((u * num_tracks).astype(np.int64), num_tracks - 1)
        candidates = np.concatenate([chosen, drawn[~np.isin(drawn, positives)]])
        _, first = np.unique(candidates, return_index=True)
        chosen = candidates[np.sort(first)][:n]  # first occurrences, in draw order
        rnd += 1
    return chosen


def _unpack(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(playlists, offsets, positives, held-out track or -1) of a batch of grouped playlists."""
    lists = batch.column("tracks")
    offsets = lists.offsets.to_numpy().astype(np.int64)
    return (
        batch.column("playlist_idx").to_numpy(),
        offsets - offsets[0],
        lists.flatten().to_numpy().astype(np.int64),
        batch.column("holdout").to_numpy().astype(np.int64),
    )


def _eval_sampler(num_tracks: int, n: int, seed: int) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            playlists, offsets, positives, holdout = _unpack(batch)
            negatives = [
                sample_eval_negatives(int(p), positives[offsets[i] : offsets[i + 1]], num_tracks, n, seed)
                for i, p in enumerate(playlists)
            ]
            flat = np.asarray(negatives, dtype=np.int32).reshape(-1)
            yield pa.record_batch(
                {
                    "playlist_idx": pa.array(playlists, pa.int32()),
                    "track_idx": pa.array(holdout, pa.int32()),
                    "negatives": pa.ListArray.from_arrays(
                        pa.array(np.arange(len(playlists) + 1, dtype=np.int32) * n), pa.array(flat)
                    ),
                }
            )

    return run


def playlist_subset(interactions: DataFrame, how: str, size: int, track: int | None, seed: int) -> DataFrame:
    """The NNCF study's data regimes: every playlist's rows (`all`), or those of `size` playlists drawn by
    a seeded hash, from all of them (`random`) or from the playlists holding `track` (`with_track`; None
    = track 0, the most popular). Track ids, and so the tables' sizes, stay those of the whole table."""
    if how == "all":
        return interactions
    pool = interactions if how == "random" else interactions.where(F.col("track_idx") == (track or 0))
    chosen = (
        pool.select("playlist_idx")
        .distinct()
        .orderBy(F.xxhash64(F.lit(seed), "playlist_idx"), "playlist_idx")
        .limit(size)
    )
    return interactions.join(F.broadcast(chosen), "playlist_idx")


def choose_holdouts(positives: DataFrame, n: int, seed: int) -> DataFrame:
    """(playlist_idx, holdout) for up to `n` playlists of at least two tracks, picked by a seeded hash:
    each one's last track (highest position; track id breaks ties)."""
    last = positives.groupBy("playlist_idx").agg(
        F.count("*").alias("n"), F.max(F.struct("pos", "track_idx"))["track_idx"].alias("holdout")
    )
    return (
        last.where("n >= 2")
        .orderBy(F.xxhash64(F.lit(seed), "playlist_idx"), "playlist_idx")
        .limit(n)
        .select("playlist_idx", "holdout")
    )


def build_positives(
    spark: SparkSession,
    interactions: DataFrame,
    num_tracks: int,
    out_dir: str,
    shards: int,
    seed: int,
    eval_dir: str | None = None,
    eval_playlists: int = 0,
    eval_negatives: int = 99,
) -> dict[str, Any]:
    """Write `out_dir/shard=<s>/` Parquet (playlist_idx, track_idx: each training positive once, every
    playlist whole in one shard) and, with `eval_playlists`, the leave-one-out set to `eval_dir`
    (EVAL_SCHEMA); returns the manifest body."""
    if eval_playlists and eval_dir is None:
        raise ValueError("eval_playlists needs an eval_dir to write the leave-one-out set to")
    if eval_playlists and "pos" not in interactions.columns:
        raise InputError(
            "the interactions table has no 'pos' column, needed to hold out each evaluated "
            "playlist's last track; set negatives.eval_playlists=0 and give ncf.eval_path"
        )
    # read three times (hold-outs, training rows, the leave-one-out set): aggregated once
    positives = (
        interactions.groupBy("playlist_idx", "track_idx").agg(F.min("pos").alias("pos"))
        if eval_playlists
        else interactions.select("playlist_idx", "track_idx").distinct()
    ).persist()
    holdouts = (
        choose_holdouts(positives, eval_playlists, seed)
        if eval_playlists  # used twice: computed once
        else spark.createDataFrame([], "playlist_idx int, holdout int")
    ).persist()
    trained = positives.join(
        F.broadcast(holdouts.withColumnRenamed("holdout", "track_idx")), ["playlist_idx", "track_idx"], "left_anti"
    )
    shard = F.pmod(F.xxhash64(F.lit(seed), "playlist_idx"), F.lit(shards)).cast("int")
    (
        trained.select("playlist_idx", "track_idx", shard.alias("shard"))
        .repartitionByRange(shards, "shard")
        .sortWithinPartitions("shard", "playlist_idx", "track_idx")
        .write.mode("overwrite")
        .partitionBy("shard")
        .parquet(out_dir)
    )
    if eval_playlists and eval_dir is not None:
        grouped = (
            positives.join(F.broadcast(holdouts), "playlist_idx")
            .groupBy("playlist_idx", "holdout")
            .agg(F.sort_array(F.collect_list("track_idx")).alias("tracks"))
        )
        (
            grouped.mapInArrow(_eval_sampler(num_tracks, eval_negatives, seed), EVAL_SCHEMA)
            .coalesce(1)
            .sortWithinPartitions("playlist_idx")
            .write.mode("overwrite")
            .parquet(eval_dir)
        )
    holdouts.unpersist()
    positives.unpersist()
    n_eval = spark.read.parquet(eval_dir).count() if eval_playlists and eval_dir is not None else 0
    sizes = {r.shard: r["count"] for r in spark.read.parquet(out_dir).groupBy("shard").count().collect()}
    per_shard = [sizes.get(s, 0) for s in range(shards)]
    log.info(
        "negatives: %d training positives in %d shards (%d..%d rows each), %d leave-one-out playlists",
        sum(per_shard),
        shards,
        min(per_shard),
        max(per_shard),
        n_eval,
    )
    return {
        "positives": sum(per_shard),
        "shards": shards,
        "num_tracks": num_tracks,
        "eval_playlists": n_eval,
        "eval_negatives": eval_negatives if n_eval else 0,
        "shard_rows": {"min": min(per_shard), "max": max(per_shard)},
    }
