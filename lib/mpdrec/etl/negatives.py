"""Stage 2c: labelled (playlist, track, label) examples for the neural models: every positive, and
k negatives per positive drawn from popularity^beta (beta 0: uniform over all tracks).

Exactness and scale: positives are grouped per playlist (one row with its track list), so the
sampler sees each playlist whole and rejects any draw that is one of its positives, redrawing until
none is left. Only the sampling distribution (a cumulative array over track ids: the "small table")
is broadcast. Draws are counter-based hashes of (seed, epoch, playlist, draw), so a playlist's
negatives depend on nothing else: not on partitioning, executors or retries. Each epoch set and
shard is a directory `epoch=<e>/shard=<s>` of shuffled rows; a Horovod rank reads its own shards.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.hashing import hash_keys, uniform

log = logging.getLogger("mpdrec.negatives")
MAX_ROUNDS = 64  # redraw rounds before a playlist is declared impossible to sample
OUTPUT_SCHEMA = "playlist_idx int, track_idx int, label byte, epoch int, shard int, order long"
_POSITIVE_DRAW = np.int64(-1)  # draw index used to hash positives (negatives use 0, 1, ...)


def sampling_cdf(counts: np.ndarray, beta: float) -> np.ndarray:
    """Cumulative sampling distribution over track ids 0..T-1 from per-track counts."""
    weights = np.where(counts > 0, counts.astype(np.float64), 0.0) ** beta if beta else np.ones(len(counts))
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def sample_negatives(playlists: np.ndarray, offsets: np.ndarray, positives: np.ndarray, cdf: np.ndarray,
                     k: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k negatives per positive for each playlist; (playlist, track, draw index) arrays.

    `positives[offsets[i]:offsets[i+1]]` are playlist `playlists[i]`'s tracks. No draw is a positive of
    its playlist: rejected draws are redrawn with a new key until none is left.
    """
    n_tracks = np.int64(len(cdf))
    lengths = np.diff(offsets)
    pl = np.repeat(playlists.astype(np.int64), lengths * k)
    draw = np.arange(len(pl), dtype=np.int64) - np.repeat(np.cumsum(lengths * k) - lengths * k, lengths * k)
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


def _sampler(cdf_bc: Any, k: int, seed: int, epochs: int, shards: int
             ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        cdf = cdf_bc.value
        for batch in batches:
            lists = batch.column("tracks")
            playlists = batch.column("playlist_idx").to_numpy()
            offsets = lists.offsets.to_numpy().astype(np.int64)
            offsets = offsets - offsets[0]
            positives = lists.flatten().to_numpy().astype(np.int64)
            pos_pl = np.repeat(playlists.astype(np.int64), np.diff(offsets))
            for epoch in range(epochs):
                neg_pl, neg_tr, draw = sample_negatives(playlists, offsets, positives, cdf, k, seed, epoch)
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


def build_negatives(spark: SparkSession, interactions: DataFrame, num_tracks: int, out_dir: str, k: int,
                    beta: float, epochs: int, shards: int, seed: int) -> dict[str, Any]:
    """Write `out_dir/epoch=<e>/shard=<s>/` Parquet (playlist_idx, track_idx, label); manifest body."""
    positives = interactions.select("playlist_idx", "track_idx").distinct()
    counts = np.zeros(num_tracks, dtype=np.int64)
    pop = positives.groupBy("track_idx").count().toPandas()  # one number per track: the small table
    counts[pop["track_idx"].to_numpy()] = pop["count"].to_numpy()
    cdf_bc = spark.sparkContext.broadcast(sampling_cdf(counts, beta))
    grouped = positives.groupBy("playlist_idx").agg(F.sort_array(F.collect_list("track_idx")).alias("tracks"))
    rows = grouped.mapInArrow(_sampler(cdf_bc, k, seed, epochs, shards), OUTPUT_SCHEMA)
    # sort on the partition columns first: Spark's planned write would otherwise add its own sort
    # on (epoch, shard) and drop this one, un-shuffling the rows (SPARK-50469)
    (rows.repartition(epochs * shards, "epoch", "shard").sortWithinPartitions("epoch", "shard", "order").drop("order")
     .write.mode("overwrite").partitionBy("epoch", "shard").parquet(out_dir))
    cdf_bc.unpersist()
    written = spark.read.parquet(out_dir)
    sizes = {(r.epoch, r.shard): r["count"] for r in written.groupBy("epoch", "shard").count().collect()}
    labels = {r.label: r["count"] for r in written.groupBy("label").count().collect()}
    per_shard = list(sizes.values())
    log.info("negatives: %d positives, %d negatives, %d epoch sets x %d shards (%d..%d rows each)",
             labels.get(1, 0) // epochs, labels.get(0, 0), epochs, shards, min(per_shard), max(per_shard))
    return {"positives": labels.get(1, 0) // epochs, "negatives_per_epoch": labels.get(0, 0) // epochs,
            "k": k, "beta": beta, "epochs": epochs, "shards": shards,
            "shard_rows": {"min": min(per_shard), "max": max(per_shard)}}
