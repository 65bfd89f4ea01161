"""Top-N tracks by factor dot product for many playlists, as blocked matrix products in executors.

`ALS.recommendForUserSubset` explodes every (playlist, track) score into rows before it keeps the
top N. Here the work is done in numpy on blocks instead:

1. each partition of the track factors is packed into blocks of at most `block_rows` tracks (an id
   vector and a float32 matrix in one row); nothing is shuffled and nothing reaches the driver;
2. the query playlists (their factors, seeds to exclude and, for evaluation, target tracks) are
   packed the same way and broadcast: there are few of them next to the tracks;
3. every (query block, track block) pair becomes one numpy task: Q @ T.T in chunks of query rows,
   seeds masked to -inf, a bounded top-N per row (argpartition), or for targets the number of
   tracks scoring above each target;
4. the pairs of a query block are merged (grouped by query block, so a group is small) into the
   final top N per playlist, ordered by score, then track_idx.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

QUERY_CHUNK = 256  # query rows per matrix product: bounds a task's score matrix to 256 x block_rows floats
_BLOCK_ID_STRIDE = 1 << 32  # block id = partition id * stride + block number within the partition

ITEM_BLOCKS = "t_block long, t_ids binary, t_mat binary"
QUERY_BLOCKS = ("q_block long, q_ids binary, q_mat binary, excl_off binary, excl binary, "
                "tgt_off binary, tgt binary, tgt_scores binary")


def _matrix(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """A list<float> column of equal-length vectors as a float32 (rows, dim) matrix."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        return np.zeros((0, 0), np.float32)
    if arr.null_count:
        raise ValueError(f"{name}: {arr.null_count} null factor vector(s)")
    lengths = np.diff(np.asarray(arr.offsets))
    if lengths.min() != lengths.max():
        raise ValueError(f"{name}: factor vectors of different lengths ({lengths.min()} and {lengths.max()})")
    values = np.asarray(arr.flatten(), dtype=np.float32)
    return values.reshape(len(arr), int(lengths[0]))


def _csr(column: pa.Array | None, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A list<int> column as (offsets, values); a missing column is empty lists."""
    if column is None:
        return np.zeros(rows + 1, np.int64), np.zeros(0, np.int32)
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = arr.fill_null(pa.scalar([], arr.type))
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    return offsets - offsets[0], np.asarray(arr.flatten(), dtype=np.int32)


def _partition_id() -> int:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return ctx.partitionId() if ctx is not None else 0


def _partition_rows(batches: Iterator[pa.RecordBatch], id_column: str, id_type: type, name: str
                    ) -> tuple[pa.Table, np.ndarray, np.ndarray, int] | None:
    """A partition's rows: (table, ids, factor matrix, first block id), or None when it is empty."""
    table = pa.Table.from_batches(list(batches))
    if table.num_rows == 0:
        return None
    ids = np.asarray(table.column(id_column), dtype=id_type)
    return table, ids, _matrix(table.column("features"), name), _partition_id() * _BLOCK_ID_STRIDE


def _pack_items(block_rows: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def pack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows = _partition_rows(batches, "track_idx", np.int32, "track factors")
        if rows is None:
            return
        _, ids, mat, base = rows
        order = np.argsort(ids, kind="stable")  # sorted ids: seeds are found by binary search
        ids, mat = ids[order], mat[order]
        for b, start in enumerate(range(0, len(ids), block_rows)):
            stop = start + block_rows
            yield pa.RecordBatch.from_pydict({
                "t_block": [base + b], "t_ids": [ids[start:stop].tobytes()],
                "t_mat": [np.ascontiguousarray(mat[start:stop]).tobytes()]})
    return pack


def _pack_queries(block_rows: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def pack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows = _partition_rows(batches, "pid", np.int64, "playlist factors")
        if rows is None:
            return
        table, ids, mat, base = rows
        names = table.column_names
        excl_off, excl = _csr(table.column("exclude") if "exclude" in names else None, len(ids))
        tgt_off, tgt = _csr(table.column("targets") if "targets" in names else None, len(ids))
        tgt_scores = (np.asarray(table.column("target_scores").combine_chunks().flatten(), np.float32)
                      if "targets" in names else np.zeros(0, np.float32))
        for b, start in enumerate(range(0, len(ids), block_rows)):
            stop = min(start + block_rows, len(ids))
            e0, e1, g0, g1 = excl_off[start], excl_off[stop], tgt_off[start], tgt_off[stop]
            yield pa.RecordBatch.from_pydict({
                "q_block": [base + b], "q_ids": [ids[start:stop].tobytes()],
                "q_mat": [np.ascontiguousarray(mat[start:stop]).tobytes()],
                "excl_off": [(excl_off[start:stop + 1] - e0).tobytes()], "excl": [excl[e0:e1].tobytes()],
                "tgt_off": [(tgt_off[start:stop + 1] - g0).tobytes()], "tgt": [tgt[g0:g1].tobytes()],
                "tgt_scores": [tgt_scores[g0:g1].tobytes()]})
    return pack


class _Pair:
    """One (query block, track block) pair, unpacked."""

    def __init__(self, row: dict) -> None:
        self.q_block = row["q_block"]
        self.q_ids = row["q_ids"]
        self.t_ids = np.frombuffer(row["t_ids"], np.int32)
        self.t_mat = np.frombuffer(row["t_mat"], np.float32).reshape(len(self.t_ids), -1)
        self.q_mat = np.frombuffer(row["q_mat"], np.float32).reshape(-1, self.t_mat.shape[1])
        self.excl_off = np.frombuffer(row["excl_off"], np.int64)
        self.excl = np.frombuffer(row["excl"], np.int32)
        self.tgt_off = np.frombuffer(row["tgt_off"], np.int64)
        self.tgt = np.frombuffer(row["tgt"], np.int32)

    def excluded(self) -> tuple[np.ndarray, np.ndarray]:
        """(query row, position in this track block) of every excluded track present in the block."""
        rows = np.repeat(np.arange(len(self.excl_off) - 1), np.diff(self.excl_off))
        pos = np.minimum(np.searchsorted(self.t_ids, self.excl), max(len(self.t_ids) - 1, 0))
        hit = self.t_ids[pos] == self.excl if len(self.t_ids) else np.zeros(len(self.excl), bool)
        return rows[hit], pos[hit]

    def scores(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first query row, score chunk) with the excluded tracks at -inf."""
        rows, pos = self.excluded()
        for start in range(0, len(self.q_mat), QUERY_CHUNK):
            s = self.q_mat[start:start + QUERY_CHUNK] @ self.t_mat.T
            m = (rows >= start) & (rows < start + len(s))
            s[rows[m] - start, pos[m]] = -np.inf
            yield start, s


def _top_k(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores of each row's k best scores. Ties at the cut go to the lower positions,
    which are the lower track_idx (a block's tracks are sorted by id), as the merge orders them:
    argpartition alone picks among tied scores arbitrarily, and could drop a track the final list
    must hold."""
    if k >= s.shape[1]:
        return np.broadcast_to(np.arange(s.shape[1]), s.shape), s
    part = np.argpartition(s, s.shape[1] - k, axis=1)[:, -k:]
    chosen = np.take_along_axis(s, part, axis=1)
    cut = chosen.min(axis=1, keepdims=True)
    for i in np.flatnonzero(np.count_nonzero(s == cut, axis=1) > np.count_nonzero(chosen == cut, axis=1)):
        part[i] = np.argsort(-s[i], kind="stable")[:k]  # rare with real factors
        chosen[i] = s[i, part[i]]
    return part, chosen


def _pair_top_n(n: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def top(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for row in batch.to_pylist():
                pair = _Pair(row)
                nq, k = len(pair.q_mat), min(n, len(pair.t_ids))
                ids, best = np.empty((nq, k), np.int32), np.empty((nq, k), np.float32)
                for start, s in pair.scores():
                    part, chosen = _top_k(s, k)
                    ids[start:start + len(s)] = pair.t_ids[part]
                    best[start:start + len(s)] = chosen
                yield pa.RecordBatch.from_pydict({"q_block": [pair.q_block], "q_ids": [pair.q_ids],
                                                  "k": pa.array([k], pa.int32()), "ids": [ids.tobytes()],
                                                  "scores": [best.tobytes()]})
    return top


def _pair_higher_counts(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """For every target of every query: the tracks of this block scoring strictly higher (the target
    itself never counts, whatever float rounding did to its score), and per query the block's tracks
    that are not excluded (the percentile's denominator)."""
    for batch in batches:
        for row in batch.to_pylist():
            pair = _Pair(row)
            tgt_scores = np.frombuffer(row["tgt_scores"], np.float32)
            higher, scored = np.zeros(len(pair.tgt), np.int64), np.zeros(len(pair.q_mat), np.int64)
            pos = np.minimum(np.searchsorted(pair.t_ids, pair.tgt), max(len(pair.t_ids) - 1, 0))
            present = pair.t_ids[pos] == pair.tgt if len(pair.t_ids) else np.zeros(len(pair.tgt), bool)
            for start, s in pair.scores():
                scored[start:start + len(s)] = np.isfinite(s).sum(axis=1)
                for i in range(len(s)):
                    g0, g1 = pair.tgt_off[start + i], pair.tgt_off[start + i + 1]
                    if g0 == g1:
                        continue
                    v = tgt_scores[g0:g1]
                    ordered = np.sort(v)
                    less = np.searchsorted(ordered, s[i], side="left")  # targets scoring below each track
                    at_least = np.cumsum(np.bincount(less, minlength=len(v) + 1)[::-1])[::-1]
                    # a track beats target j iff more than the targets <= v_j score below it
                    higher[g0:g1] = at_least[np.searchsorted(ordered, v, side="right")]
                    own = present[g0:g1]
                    higher[g0:g1][own] -= s[i][pos[g0:g1][own]] > v[own]
            yield pa.RecordBatch.from_pydict({"q_block": [pair.q_block], "q_ids": [pair.q_ids],
                                              "tgt_off": [pair.tgt_off.tobytes()], "tgt": [pair.tgt.tobytes()],
                                              "higher": [higher.tobytes()], "scored": [scored.tobytes()]})


def _blocks(queries: DataFrame, items: DataFrame, block_rows: int) -> DataFrame:
    """Every (query block, track block) pair, query blocks broadcast."""
    item_blocks = items.select("track_idx", "features").mapInArrow(_pack_items(block_rows), ITEM_BLOCKS)
    cols = ["pid", "features"] + [c for c in ("exclude", "targets", "target_scores") if c in queries.columns]
    query_blocks = queries.select(*cols).mapInArrow(_pack_queries(block_rows), QUERY_BLOCKS)
    return item_blocks.crossJoin(F.broadcast(query_blocks))


def top_n(queries: DataFrame, items: DataFrame, n: int, block_rows: int) -> DataFrame:
    """pid, track_idx, score: each query playlist's n best tracks by dot product, its `exclude`
    tracks left out, ordered by score then track_idx (fewer when fewer tracks remain).

    queries: pid long, features array<float>, optionally exclude array<int> (seeds).
    items: track_idx int, features array<float>.
    """
    pairs = _blocks(queries, items, block_rows).mapInArrow(
        _pair_top_n(n), "q_block long, q_ids binary, k int, ids binary, scores binary")

    def merge(group: pd.DataFrame) -> pd.DataFrame:
        pids = np.frombuffer(group["q_ids"].iloc[0], np.int64)
        ids = np.hstack([np.frombuffer(b, np.int32).reshape(len(pids), k) for b, k in zip(group["ids"], group["k"])])
        scores = np.hstack([np.frombuffer(b, np.float32).reshape(len(pids), k)
                            for b, k in zip(group["scores"], group["k"])])
        order = np.lexsort((ids, -scores), axis=1)[:, :n]  # score descending, then track_idx
        ids, scores = np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)
        keep = np.isfinite(scores)
        return pd.DataFrame({"pid": np.repeat(pids, ids.shape[1])[keep.ravel()], "track_idx": ids[keep],
                             "score": scores[keep]})

    return pairs.groupBy("q_block").applyInPandas(merge, "pid long, track_idx int, score float")


def percentile_ranks(queries: DataFrame, items: DataFrame, targets: DataFrame, block_rows: int) -> DataFrame:
    """pid, track_idx, percentile: where each target track falls in its playlist's ranking of all
    tracks (0 = first, 1 = last; Hu, Koren and Volinsky's rank_ui), the `exclude` tracks left out.

    targets: pid, track_idx; pairs whose playlist or track has no factors are skipped.
    """
    dot = F.aggregate(F.zip_with("qf", "tf", lambda x, y: x * y), F.lit(0.0).cast("float"), lambda a, x: a + x)
    scored = (targets.select("pid", "track_idx").distinct()
              .join(queries.select("pid", F.col("features").alias("qf")), "pid")
              .join(items.select("track_idx", F.col("features").alias("tf")), "track_idx")
              .select("pid", F.struct("track_idx", dot.alias("score")).alias("t")))
    per_query = scored.groupBy("pid").agg(F.array_sort(F.collect_list("t")).alias("t")).select(
        "pid", F.col("t.track_idx").alias("targets"), F.col("t.score").alias("target_scores"))
    with_targets = queries.drop("targets", "target_scores").join(per_query, "pid")
    pairs = _blocks(with_targets, items, block_rows).mapInArrow(
        _pair_higher_counts, "q_block long, q_ids binary, tgt_off binary, tgt binary, higher binary, scored binary")

    def merge(group: pd.DataFrame) -> pd.DataFrame:
        pids = np.frombuffer(group["q_ids"].iloc[0], np.int64)
        offsets = np.frombuffer(group["tgt_off"].iloc[0], np.int64)
        higher = sum(np.frombuffer(b, np.int64) for b in group["higher"])
        scored = sum(np.frombuffer(b, np.int64) for b in group["scored"])
        per_target = np.repeat(np.maximum(scored - 1, 1), np.diff(offsets))  # the target itself is not ranked against
        return pd.DataFrame({"pid": np.repeat(pids, np.diff(offsets)),
                             "track_idx": np.frombuffer(group["tgt"].iloc[0], np.int32),
                             "percentile": higher / per_target})

    return pairs.groupBy("q_block").applyInPandas(merge, "pid long, track_idx int, percentile double")
