"""Top-N tracks by factor dot product for many playlists, as blocked matrix products in executors.

`ALS.recommendForUserSubset` explodes every (playlist, track) score into rows before it keeps the
top N. Here the work is done in numpy on blocks instead:

1. the query playlists (their factors, seeds to exclude and, for evaluation, target tracks) are
   packed into blocks of at most `block_rows` rows on the executors and collected: there are few of
   them next to the tracks (a challenge's 10,000), and they travel to every task in its closure
   (Spark broadcasts a large one). They are not cross-joined to the track blocks: the track block
   repeated once per query block in one Arrow batch overflowed Arrow's 2 GB vectors at 100 slices;
2. each partition of the track factors is cut into blocks of at most `block_rows` tracks (sorted by
   id) and scored against every query block: Q @ T.T in chunks of query rows, seeds masked to -inf;
3. for the top N, a track can only be among a playlist's N best if it scores at least as high as
   the N-th best of any subset of tracks: the REFERENCE_FACTOR * N most popular tracks (the lowest
   track_idx) are scored first on the driver, and in the blocks only the tracks at or above that
   bound are kept (a comparison instead of a partial sort of every score; exact, ties included),
   at most N per playlist and block. Most tracks cannot reach the bound at all: a score is at most
   |q| |t| (Cauchy-Schwarz), and most tracks' factors are short (rare tracks). So each query gets a
   reach, the least track norm that can reach its bound; a query block is ordered by reach, and a
   chunk of it is multiplied only with the tracks whose norm reaches the least reach of its rows.
   The same tracks are kept as without it. For targets, the number of tracks scoring above each
   target is counted (every track: no pruning);
4. the track blocks' lists are merged per chunk of QUERY_CHUNK query rows (grouped by query block
   and chunk: a group is small, and a challenge's 10,000 queries, one query block, are merged in
   40 groups rather than one task) into the final top N per playlist, ordered by score, then track_idx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.csr import csr_rows, row_ids
from mpdrec.vectors import sorted_positions, vector_matrix

QUERY_CHUNK = 256  # query rows per matrix product: bounds a task's score matrix to 256 x block_rows floats
REFERENCE_FACTOR = 16  # the bound of step 3 comes from the REFERENCE_FACTOR * n most popular tracks:
# a larger set gives a higher bound (fewer tracks kept, more pruned) for more work on the driver
ROUNDING_MARGIN = 1e-4  # relative: far above float32's rounding of a 64..256-term dot product
QUERY_BLOCKS = (
    "q_block long, q_ids binary, q_mat binary, excl_off binary, excl binary, "
    "tgt_off binary, tgt binary, tgt_scores binary"
)
QueryBlock = dict  # one row of QUERY_BLOCKS (+ "bound", "reach": float32 per query row, for the top N)


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


def _pack_queries(block_rows: int) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def pack(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        batches = list(batches)
        if not batches:  # an empty partition sends no batch at all
            return
        table = pa.Table.from_batches(batches)
        if table.num_rows == 0:
            return
        ids = np.asarray(table.column("pid"), dtype=np.int64)
        mat = vector_matrix(table.column("features"), "playlist factors")
        names = table.column_names
        excl_off, excl = _csr(table.column("exclude") if "exclude" in names else None, len(ids))
        tgt_off, tgt = _csr(table.column("targets") if "targets" in names else None, len(ids))
        tgt_scores = (
            np.asarray(table.column("target_scores").combine_chunks().flatten(), np.float32)
            if "targets" in names
            else np.zeros(0, np.float32)
        )
        base = _partition_id() << 32  # unique block ids across partitions
        for b, start in enumerate(range(0, len(ids), block_rows)):
            stop = min(start + block_rows, len(ids))
            e0, e1, g0, g1 = excl_off[start], excl_off[stop], tgt_off[start], tgt_off[stop]
            yield pa.RecordBatch.from_pydict(
                {
                    "q_block": [base + b],
                    "q_ids": [ids[start:stop].tobytes()],
                    "q_mat": [np.ascontiguousarray(mat[start:stop]).tobytes()],
                    "excl_off": [(excl_off[start : stop + 1] - e0).tobytes()],
                    "excl": [excl[e0:e1].tobytes()],
                    "tgt_off": [(tgt_off[start : stop + 1] - g0).tobytes()],
                    "tgt": [tgt[g0:g1].tobytes()],
                    "tgt_scores": [tgt_scores[g0:g1].tobytes()],
                }
            )

    return pack


def _query_blocks(queries: DataFrame, block_rows: int) -> list[QueryBlock]:
    """The queries packed into blocks (on the executors) and collected."""
    cols = ["pid", "features"] + [c for c in ("exclude", "targets", "target_scores") if c in queries.columns]
    packed = queries.select(*cols).mapInArrow(_pack_queries(block_rows), QUERY_BLOCKS)
    return [{k: (bytes(v) if isinstance(v, bytearray) else v) for k, v in r.asDict().items()} for r in packed.collect()]


class _Tracks:
    """A block of tracks: ids sorted (seeds are found by binary search), their factors and norms."""

    def __init__(self, ids: np.ndarray, mat: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        self.ids, self.mat = ids[order], np.ascontiguousarray(mat[order])
        self.norms = np.linalg.norm(self.mat, axis=1)


def _track_blocks(block_rows: int) -> Callable[[Iterable[pa.RecordBatch]], Iterator[_Tracks]]:
    """A partition of the track factors as blocks of at most block_rows tracks."""

    def blocks(batches: Iterable[pa.RecordBatch]) -> Iterator[_Tracks]:
        batches = list(batches)
        if not batches:  # an empty partition sends no batch at all
            return
        table = pa.Table.from_batches(batches)
        if table.num_rows == 0:
            return
        tracks = _Tracks(
            np.asarray(table.column("track_idx"), dtype=np.int32),
            vector_matrix(table.column("features"), "track factors"),
        )
        for start in range(0, len(tracks.ids), block_rows):
            yield _Tracks(tracks.ids[start : start + block_rows], tracks.mat[start : start + block_rows])

    return blocks


class _Pair:
    """One (query block, track block) pair."""

    def __init__(self, query: QueryBlock, tracks: _Tracks) -> None:
        self.t_ids, self.t_mat, self.t_norms = tracks.ids, tracks.mat, tracks.norms
        self.q_mat = np.frombuffer(query["q_mat"], np.float32).reshape(-1, self.t_mat.shape[1])
        self.excl_off = np.frombuffer(query["excl_off"], np.int64)
        self.excl = np.frombuffer(query["excl"], np.int32)

    def excluded(self) -> tuple[np.ndarray, np.ndarray]:
        """(query row, position in this track block) of every excluded track present in the block."""
        rows = row_ids(np.diff(self.excl_off))
        pos, hit = sorted_positions(self.t_ids, self.excl)
        return rows[hit], pos[hit]

    def scores(self, reach: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(first query row, score chunk, the block positions of its columns: None for all of them),
        the excluded tracks at -inf. With `reach` (per query row), a chunk scores only the tracks
        whose norm is at least the least reach of its rows, in block order."""
        rows, pos = self.excluded()
        for start in range(0, len(self.q_mat), QUERY_CHUNK):
            stop = min(start + QUERY_CHUNK, len(self.q_mat))
            m = (rows >= start) & (rows < stop)
            r, p = rows[m] - start, pos[m]
            cols = None if reach is None else np.flatnonzero(self.t_norms >= reach[start:stop].min())
            if cols is None or len(cols) == len(self.t_ids):
                cols, s = None, self.q_mat[start:stop] @ self.t_mat.T
            else:
                s = self.q_mat[start:stop] @ self.t_mat[cols].T
                j, hit = sorted_positions(cols, p)
                r, p = r[hit], j[hit]
            s[r, p] = -np.inf
            yield start, s, cols


def _top_k(s: np.ndarray, k: int) -> np.ndarray:
    """Positions of each row's k best scores. Ties at the cut go to the lower positions, which are
    the lower track_idx (a block's tracks are sorted by id), as the merge orders them: argpartition
    alone picks among tied scores arbitrarily, and could drop a track the final list must hold."""
    part = np.argpartition(s, s.shape[1] - k, axis=1)[:, -k:]
    chosen = np.take_along_axis(s, part, axis=1)
    cut = chosen.min(axis=1, keepdims=True)
    for i in np.flatnonzero(np.count_nonzero(s == cut, axis=1) > np.count_nonzero(chosen == cut, axis=1)):
        part[i] = np.argsort(-s[i], kind="stable")[:k]  # rare with real factors
    return part


def _kept(s: np.ndarray, bound: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, position), row by row, of the scores that can make their row's top N: at or above the
    row's bound, not excluded, and at most the k best of the row. (A 2-D nonzero of the mask was
    far slower than its flat nonzero; a -inf bound is raised to the lowest finite float, so one
    comparison also leaves out the excluded tracks' -inf.)"""
    floor = np.maximum(bound, np.finfo(np.float32).min)
    rows, pos = np.divmod(np.flatnonzero(s >= floor[:, None]), s.shape[1])
    crowded = np.flatnonzero(np.bincount(rows, minlength=len(s)) > k)
    if len(crowded):  # more than k above the bound (a loose bound, or ties): the k best
        spared = ~np.isin(rows, crowded)
        rows = np.concatenate([rows[spared], np.repeat(crowded, k)])
        pos = np.concatenate([pos[spared], _top_k(s[crowded], k).ravel()])
        order = np.lexsort((pos, rows))
        rows, pos = rows[order], pos[order]
    return rows, pos


def _reach(bound: np.ndarray, q_norms: np.ndarray) -> np.ndarray:
    """Per query, the least track norm whose score can reach its bound: bound / |q|, lowered by
    ROUNDING_MARGIN for float32 rounding (any track may reach a bound of 0 or less; no track a
    positive bound of a query without factors)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bound > 0, bound / (q_norms * (1 + ROUNDING_MARGIN)), 0).astype(np.float32)


def _rows_in_order(offsets: np.ndarray, order: np.ndarray, *values: np.ndarray) -> tuple[bytes, ...]:
    """A block's list columns that share `offsets` with their rows in `order`, as bytes: the new
    offsets, then each of `values`."""
    picked, lengths = csr_rows((offsets, np.arange(offsets[-1], dtype=np.int64)), order)
    out = np.zeros(len(order) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out.tobytes(), *(v[picked].tobytes() for v in values)


def _by_reach(block: QueryBlock, bound: np.ndarray, reach: np.ndarray) -> QueryBlock:
    """`block` with its "bound" and "reach", its queries ordered by reach: a chunk of the matrix
    product then holds queries that need about the same tracks."""
    order = np.argsort(reach, kind="stable")
    ids = np.frombuffer(block["q_ids"], np.int64)
    mat = np.frombuffer(block["q_mat"], np.float32).reshape(len(ids), -1)
    excl_off, excl = _rows_in_order(
        np.frombuffer(block["excl_off"], np.int64), order, np.frombuffer(block["excl"], np.int32)
    )
    tgt_off, tgt, tgt_scores = _rows_in_order(
        np.frombuffer(block["tgt_off"], np.int64),
        order,
        np.frombuffer(block["tgt"], np.int32),
        np.frombuffer(block["tgt_scores"], np.float32),
    )
    return {
        **block,
        "q_ids": ids[order].tobytes(),
        "q_mat": np.ascontiguousarray(mat[order]).tobytes(),
        "excl_off": excl_off,
        "excl": excl,
        "tgt_off": tgt_off,
        "tgt": tgt,
        "tgt_scores": tgt_scores,
        "bound": bound[order].tobytes(),
        "reach": reach[order].tobytes(),
    }


def _bounds(blocks: list[QueryBlock], items: DataFrame, n: int) -> list[QueryBlock]:
    """The query blocks with "bound" and "reach" (`_by_reach`): per query, the n-th best score among
    the REFERENCE_FACTOR * n most popular tracks (seeds excluded), less ROUNDING_MARGIN * |q| * max |t|;
    -inf where they are too few. The margin covers float32 rounding: a matrix product of another
    shape (the blocks') may sum in another order, and give the same track a score a few ulps apart."""
    rows = items.where(F.col("track_idx") < REFERENCE_FACTOR * n).select("track_idx", "features").toPandas()
    if len(rows) < n:
        unbounded = [np.full(len(b["q_ids"]) // 8, -np.inf, np.float32) for b in blocks]
        return [_by_reach(b, u, np.zeros(len(u), np.float32)) for b, u in zip(blocks, unbounded)]
    reference = _Tracks(
        rows["track_idx"].to_numpy(np.int32), np.stack(list(rows["features"].to_numpy())).astype(np.float32)
    )
    longest = float(reference.norms.max())
    out = []
    for block in blocks:
        pair = _Pair(block, reference)
        bound = np.empty(len(pair.q_mat), np.float32)
        for start, s, _ in pair.scores():
            bound[start : start + len(s)] = np.partition(s, s.shape[1] - n, axis=1)[:, s.shape[1] - n]
        q_norms = np.linalg.norm(pair.q_mat, axis=1)
        bound -= ROUNDING_MARGIN * q_norms * longest
        out.append(_by_reach(block, bound, _reach(bound, q_norms)))
    return out


def _pair_top_n(
    blocks: list[QueryBlock], n: int, block_rows: int
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def top(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for tracks in _track_blocks(block_rows)(batches):
            for block in blocks:
                pair, bound = _Pair(block, tracks), np.frombuffer(block["bound"], np.float32)
                starts, counts, ids, scores = [], [], [], []
                for start, s, cols in pair.scores(np.frombuffer(block["reach"], np.float32)):
                    rows, pos = _kept(s, bound[start : start + len(s)], min(n, len(pair.t_ids)))
                    starts.append(start)
                    counts.append(np.bincount(rows, minlength=len(s)).astype(np.int32).tobytes())
                    ids.append(pair.t_ids[pos if cols is None else cols[pos]].tobytes())
                    scores.append(s[rows, pos].tobytes())
                yield pa.RecordBatch.from_pydict(
                    {
                        "q_block": [block["q_block"]] * len(starts),
                        "q_start": pa.array(starts, pa.int32()),
                        "counts": counts,
                        "ids": ids,
                        "scores": scores,
                    }
                )

    return top


def _pair_higher_counts(
    blocks: list[QueryBlock], block_rows: int
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """For every target of every query: the tracks of a block scoring strictly higher (the target
    itself never counts, whatever float rounding did to its score), and per query the block's tracks
    that are not excluded (the percentile's denominator)."""

    def count(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for tracks in _track_blocks(block_rows)(batches):
            for block in blocks:
                pair = _Pair(block, tracks)
                tgt_off, tgt = np.frombuffer(block["tgt_off"], np.int64), np.frombuffer(block["tgt"], np.int32)
                tgt_scores = np.frombuffer(block["tgt_scores"], np.float32)
                higher, scored = np.zeros(len(tgt), np.int64), np.zeros(len(pair.q_mat), np.int64)
                pos, present = sorted_positions(pair.t_ids, tgt)
                for start, s, _ in pair.scores():
                    scored[start : start + len(s)] = np.isfinite(s).sum(axis=1)
                    for i in range(len(s)):
                        g0, g1 = tgt_off[start + i], tgt_off[start + i + 1]
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
                yield pa.RecordBatch.from_pydict(
                    {"q_block": [block["q_block"]], "higher": [higher.tobytes()], "scored": [scored.tobytes()]}
                )

    return count


def top_n(queries: DataFrame, items: DataFrame, n: int, block_rows: int) -> DataFrame:
    """pid, track_idx, score, rank (0-based): each query playlist's n best tracks by dot product, its
    `exclude` tracks left out, ranked by score then track_idx (fewer when fewer tracks remain).

    queries: pid long, features array<float>, optionally exclude array<int> (seeds).
    items: track_idx int, features array<float>; the lowest track_idx should be the most popular
    tracks (they bound the scores worth keeping: any tracks would be exact, popular ones prune most).
    """
    blocks = _bounds(_query_blocks(queries, block_rows), items, n)
    pids = {b["q_block"]: np.frombuffer(b["q_ids"], np.int64) for b in blocks}
    pairs = items.select("track_idx", "features").mapInArrow(
        _pair_top_n(blocks, n, block_rows), "q_block long, q_start int, counts binary, ids binary, scores binary"
    )

    def merge(group: pd.DataFrame) -> pd.DataFrame:
        ids = np.concatenate([np.frombuffer(b, np.int32) for b in group["ids"]])
        scores = np.concatenate([np.frombuffer(b, np.float32) for b in group["scores"]])
        counts = [np.frombuffer(b, np.int32) for b in group["counts"]]
        rows = np.concatenate([row_ids(c) for c in counts])
        order = np.lexsort((ids, -scores, rows))  # per query: score descending, then track_idx
        rows, ids, scores = rows[order], ids[order], scores[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
        keep = rank < n
        chunk = pids[group["q_block"].iloc[0]][group["q_start"].iloc[0] :]
        return pd.DataFrame(
            {
                "pid": chunk[rows[keep]],
                "track_idx": ids[keep],
                "score": scores[keep],
                "rank": rank[keep].astype(np.int32),
            }
        )

    return pairs.groupBy("q_block", "q_start").applyInPandas(merge, "pid long, track_idx int, score float, rank int")


def percentile_ranks(queries: DataFrame, items: DataFrame, targets: DataFrame, block_rows: int) -> DataFrame:
    """pid, track_idx, percentile: where each target track falls in its playlist's ranking of all
    tracks (0 = first, 1 = last; Hu, Koren and Volinsky's rank_ui), the `exclude` tracks left out.

    targets: pid, track_idx; pairs whose playlist or track has no factors are skipped.
    """
    dot = F.aggregate(F.zip_with("qf", "tf", lambda x, y: x * y), F.lit(0.0).cast("float"), lambda a, x: a + x)
    scored = (
        targets.select("pid", "track_idx")
        .distinct()
        .join(queries.select("pid", F.col("features").alias("qf")), "pid")
        .join(items.select("track_idx", F.col("features").alias("tf")), "track_idx")
        .select("pid", F.struct("track_idx", dot.alias("score")).alias("t"))
    )
    per_query = (
        scored.groupBy("pid")
        .agg(F.array_sort(F.collect_list("t")).alias("t"))
        .select("pid", F.col("t.track_idx").alias("targets"), F.col("t.score").alias("target_scores"))
    )
    blocks = _query_blocks(queries.drop("targets", "target_scores").join(per_query, "pid"), block_rows)
    by_id = {b["q_block"]: b for b in blocks}
    pairs = items.select("track_idx", "features").mapInArrow(
        _pair_higher_counts(blocks, block_rows), "q_block long, higher binary, scored binary"
    )

    def merge(group: pd.DataFrame) -> pd.DataFrame:
        block = by_id[group["q_block"].iloc[0]]
        offsets = np.frombuffer(block["tgt_off"], np.int64)
        higher = sum(np.frombuffer(b, np.int64) for b in group["higher"])
        scored = sum(np.frombuffer(b, np.int64) for b in group["scored"])
        per_target = np.repeat(np.maximum(scored - 1, 1), np.diff(offsets))  # the target itself is not ranked against
        return pd.DataFrame(
            {
                "pid": np.repeat(np.frombuffer(block["q_ids"], np.int64), np.diff(offsets)),
                "track_idx": np.frombuffer(block["tgt"], np.int32),
                "percentile": higher / per_target,
            }
        )

    return pairs.groupBy("q_block").applyInPandas(merge, "pid long, track_idx int, percentile double")
