"""Stage 3: labelled (playlist, track, label) examples for the neural models: every positive, and
k negatives per positive drawn from popularity^beta (beta 0: uniform over all tracks).

Exactness and scale: positives are grouped per playlist (one row with its track list), so the
sampler sees each playlist whole and rejects any draw that is one of its positives, redrawing until
none is left. Only the sampling distribution (a cumulative array over track ids: the "small table")
is broadcast. Draws are counter-based hashes of (seed, epoch, playlist, draw), so a playlist's
negatives depend on nothing else: not on partitioning, executors or retries. Each epoch set and
shard is a directory `epoch=<e>/shard=<s>` of shuffled rows; a Horovod rank reads its own shards.
The rows are range-partitioned on (epoch, shard, shuffle order) into tasks of about WRITE_TASK_ROWS
rows, so the write runs in as many tasks as the data needs, whatever the shard count (330M rows per
epoch set at full MPD went through one task per shard), and a shard's files, read in name order,
hold its rows in the same shuffled order for any task size.

Leave-one-out set (the NCF paper's protocol): for up to `eval_playlists` playlists, chosen by a
seeded hash, the last track (highest position, the paper's "latest interaction") is held out of the
training rows and written to `eval/` with `eval_negatives` distinct tracks that are none of the
playlist's positives. Negatives never hit a held-out track either: it stays a positive for rejection.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.errors import InputError
from mpdrec.hashing import hash_keys, uniform

log = logging.getLogger("mpdrec.negatives")
MAX_ROUNDS = 64  # redraw rounds before a playlist is declared impossible to sample
OUTPUT_SCHEMA = "playlist_idx int, track_idx int, label byte, epoch int, shard int, order long"
_POSITIVE_DRAW = np.int64(-1)  # draw index used to hash positives (negatives use 0, 1, ...)
EVAL_STREAM = -1  # epoch key of the leave-one-out draws (training epoch sets are 0, 1, ...)
EVAL_SCHEMA = "playlist_idx int, track_idx int, negatives array<int>"
WRITE_TASK_ROWS = 4_000_000  # rows per write task (about 40 MB of Parquet)


def sampling_cdf(counts: np.ndarray, beta: float) -> np.ndarray:
    """Cumulative sampling distribution over track ids 0..T-1 from per-track counts."""
    weights = np.where(counts > 0, counts.astype(np.float64), 0.0) ** beta if beta else np.ones(len(counts))
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def sample_negatives(playlists: np.ndarray, offsets: np.ndarray, positives: np.ndarray, cdf: np.ndarray,
                     n_draws: np.ndarray, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n_draws[i]` negatives for playlist `playlists[i]`; (playlist, track, draw index) arrays.

    `positives[offsets[i]:offsets[i+1]]` are playlist `playlists[i]`'s tracks. No draw is a positive of
    its playlist: rejected draws are redrawn with a new key until none is left.
    """
    n_tracks = np.int64(len(cdf))
    lengths = np.diff(offsets)
    pl = np.repeat(playlists.astype(np.int64), n_draws)
    draw = np.arange(len(pl), dtype=np.int64) - np.repeat(np.cumsum(n_draws) - n_draws, n_draws)
    pos_keys = np.sort(np.repeat(playlists.astype(np.int64), lengths) * n_tracks + positives)
    tracks = np.empty(len(pl), dtype=np.int64)
    todo = np.arange(len(pl))
    for rnd in range(MAX_ROUNDS):
        u = uniform(seed, epoch, pl[todo], draw[todo], rnd)
        tracks[todo] = np.minimum(np.searchsorted(cdf, u, side="right"), n_tracks - 1)
        keys = pl[todo] * n_tracks + tracks[todo]
        hit = np.searchsorted(pos_keys, keys)
        hit = np.minimum(hit, len(pos_keys) - 1)
        todo = todo[pos_keys[hit] == keys] if len(pos_keys) else todo[:0]
        if not len(todo):
            return pl, tracks, draw
    raise ValueError(f"playlists {sorted(set(pl[todo].tolist()))[:5]} could not be given negatives: "
                     "their positives cover (almost) all sampled tracks")


def sample_eval_negatives(playlist: int, positives: np.ndarray, num_tracks: int, n: int, seed: int) -> np.ndarray:
    """`n` distinct tracks, uniform over those that are none of the playlist's `positives` (its held-out
    track included): the candidates its held-out track is ranked against."""
    if num_tracks - len(np.unique(positives)) < n:
        raise ValueError(f"playlist {playlist}: fewer than {n} tracks are not among its positives; "
                         "lower negatives.eval_negatives")
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
    return (batch.column("playlist_idx").to_numpy(), offsets - offsets[0],
            lists.flatten().to_numpy().astype(np.int64), batch.column("holdout").to_numpy().astype(np.int64))


def _sampler(cdf_bc: Any, k: int, seed: int, epochs: int, shards: int
             ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        cdf = cdf_bc.value
        for batch in batches:
            playlists, offsets, all_positives, holdout = _unpack(batch)
            lengths = np.diff(offsets)
            train = all_positives != np.repeat(holdout, lengths)  # held-out tracks are not trained on
            positives = all_positives[train]
            pos_pl = np.repeat(playlists.astype(np.int64), lengths)[train]
            n_draws = k * (lengths - (holdout >= 0))
            for epoch in range(epochs):
                neg_pl, neg_tr, draw = sample_negatives(playlists, offsets, all_positives, cdf, n_draws, seed, epoch)
                pl = np.concatenate([pos_pl, neg_pl])
                tr = np.concatenate([positives, neg_tr])
                dr = np.concatenate([np.full(len(pos_pl), _POSITIVE_DRAW), draw])
                h = hash_keys(seed, epoch, pl, tr, dr)
                yield pa.record_batch({
                    "playlist_idx": pa.array(pl, pa.int32()),
                    "track_idx": pa.array(tr, pa.int32()),
                    "label": pa.array(np.concatenate([np.ones(len(pos_pl)), np.zeros(len(neg_pl))]), pa.int8()),
                    "epoch": pa.array(np.full(len(pl), epoch), pa.int32()),
                    "shard": pa.array((h % np.uint64(shards)).astype(np.int32), pa.int32()),
                    "order": pa.array((hash_keys(h, 1) >> np.uint64(1)).astype(np.int64), pa.int64()),
                })
    return run


def _eval_sampler(num_tracks: int, n: int, seed: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            playlists, offsets, positives, holdout = _unpack(batch)
            negatives = [sample_eval_negatives(int(p), positives[offsets[i]:offsets[i + 1]], num_tracks, n, seed)
                         for i, p in enumerate(playlists)]
            flat = np.asarray(negatives, dtype=np.int32).reshape(-1)
            yield pa.record_batch({
                "playlist_idx": pa.array(playlists, pa.int32()),
                "track_idx": pa.array(holdout, pa.int32()),
                "negatives": pa.ListArray.from_arrays(pa.array(np.arange(len(playlists) + 1, dtype=np.int32) * n),
                                                      pa.array(flat)),
            })
    return run


def playlist_subset(interactions: DataFrame, how: str, size: int, track: int | None, seed: int) -> DataFrame:
    """The NNCF study's data regimes: every playlist's rows (`all`), or those of `size` playlists drawn by
    a seeded hash, from all of them (`random`) or from the playlists holding `track` (`with_track`; None
    = track 0, the most popular). Track ids, and so the tables' sizes, stay those of the whole table."""
    if how == "all":
        return interactions
    pool = interactions if how == "random" else interactions.where(F.col("track_idx") == (track or 0))
    chosen = (pool.select("playlist_idx").distinct()
              .orderBy(F.xxhash64(F.lit(seed), "playlist_idx"), "playlist_idx").limit(size))
    return interactions.join(F.broadcast(chosen), "playlist_idx")


def choose_holdouts(positives: DataFrame, n: int, seed: int) -> DataFrame:
    """(playlist_idx, holdout) for up to `n` playlists of at least two tracks, picked by a seeded hash:
    each one's last track (highest position; track id breaks ties)."""
    last = positives.groupBy("playlist_idx").agg(
        F.count("*").alias("n"), F.max(F.struct("pos", "track_idx"))["track_idx"].alias("holdout"))
    return (last.where("n >= 2").orderBy(F.xxhash64(F.lit(seed), "playlist_idx"), "playlist_idx").limit(n)
            .select("playlist_idx", "holdout"))


def build_negatives(spark: SparkSession, interactions: DataFrame, num_tracks: int, out_dir: str, k: int,
                    beta: float, epochs: int, shards: int, seed: int, eval_dir: str | None = None,
                    eval_playlists: int = 0, eval_negatives: int = 99,
                    task_rows: int = WRITE_TASK_ROWS) -> dict[str, Any]:
    """Write `out_dir/epoch=<e>/shard=<s>/` Parquet (playlist_idx, track_idx, label) and, with
    `eval_playlists`, the leave-one-out set to `eval_dir` (EVAL_SCHEMA); returns the manifest body."""
    if eval_playlists and "pos" not in interactions.columns:
        raise InputError("the interactions table has no 'pos' column, needed to hold out each evaluated "
                         "playlist's last track; set negatives.eval_playlists=0 and give ncf.eval_path")
    positives = (interactions.groupBy("playlist_idx", "track_idx").agg(F.min("pos").alias("pos"))
                 if eval_playlists else interactions.select("playlist_idx", "track_idx").distinct())
    holdouts = (choose_holdouts(positives, eval_playlists, seed) if eval_playlists  # used twice: computed once
                else spark.createDataFrame([], "playlist_idx int, holdout int")).persist()
    trained = positives.join(F.broadcast(holdouts.withColumnRenamed("holdout", "track_idx")),
                             ["playlist_idx", "track_idx"], "left_anti")
    counts = np.zeros(num_tracks, dtype=np.int64)
    pop = trained.groupBy("track_idx").count().toPandas()  # one number per track: the small table
    counts[pop["track_idx"].to_numpy()] = pop["count"].to_numpy()
    cdf_bc = spark.sparkContext.broadcast(sampling_cdf(counts, beta))
    grouped = (positives.groupBy("playlist_idx").agg(F.sort_array(F.collect_list("track_idx")).alias("tracks"))
               .join(F.broadcast(holdouts), "playlist_idx", "left").fillna(-1, ["holdout"])).persist()
    rows = grouped.mapInArrow(_sampler(cdf_bc, k, seed, epochs, shards), OUTPUT_SCHEMA)
    expected = (grouped.agg(F.sum(F.size("tracks"))).first()[0] or 0) * (1 + k) * epochs
    tasks = max(epochs * shards, math.ceil(expected / task_rows))
    # sort on the partition columns first: Spark's planned write would otherwise add its own sort
    # on (epoch, shard) and drop this one, un-shuffling the rows (SPARK-50469)
    (rows.repartitionByRange(tasks, "epoch", "shard", "order").sortWithinPartitions("epoch", "shard", "order")
     .drop("order").write.mode("overwrite").partitionBy("epoch", "shard").parquet(out_dir))
    cdf_bc.unpersist()
    if eval_playlists:
        (grouped.where("holdout >= 0").mapInArrow(_eval_sampler(num_tracks, eval_negatives, seed), EVAL_SCHEMA)
         .coalesce(1).sortWithinPartitions("playlist_idx").write.mode("overwrite").parquet(eval_dir))
    grouped.unpersist()
    holdouts.unpersist()
    n_eval = spark.read.parquet(eval_dir).count() if eval_playlists else 0
    written = spark.read.parquet(out_dir)
    sizes = {(r.epoch, r.shard): r["count"] for r in written.groupBy("epoch", "shard").count().collect()}
    labels = {r.label: r["count"] for r in written.groupBy("label").count().collect()}
    per_shard = list(sizes.values())
    log.info("negatives: %d positives, %d negatives, %d epoch sets x %d shards (%d..%d rows each)",
             labels.get(1, 0) // epochs, labels.get(0, 0), epochs, shards, min(per_shard), max(per_shard))
    return {"positives": labels.get(1, 0) // epochs, "negatives_per_epoch": labels.get(0, 0) // epochs,
            "k": k, "beta": beta, "epochs": epochs, "shards": shards, "num_tracks": num_tracks,
            "eval_playlists": n_eval, "eval_negatives": eval_negatives if n_eval else 0,
            "shard_rows": {"min": min(per_shard), "max": max(per_shard)}}
