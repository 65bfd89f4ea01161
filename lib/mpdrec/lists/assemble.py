"""The single place where a playlist's final list is assembled: sources in priority order (the
model, then its fallbacks), seeds dropped, duplicates dropped (first occurrence wins), cut to n."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import reduce

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from mpdrec.config import RankConfig
from mpdrec.lists.inputs import Queries
from mpdrec.sorted_groups import ranks_in_groups, sorted_by, whole_groups

SUBMISSION_SIZE = 500
FINAL = "final"  # the blend's submission, beside one per single source (rank.models)
WITH_NCF, WITHOUT_NCF = "final_with_ncf", "final_without_ncf"  # final's re-ranker fitted with the NCF score
# when final's has none, or without it when final's has it (rank.blend.compare_ncf; validation challenge only)
WITHOUT_DAE = "final_without_dae"  # final's re-ranker without the autoencoder (rank.blend.compare_dae)
CANDIDATES = "candidates"  # the candidate set's place in the merge that computes what follows it
SEED = -1  # the priority of a playlist's seeds in the merge: never listed
ASSEMBLED = "pid long, rank int, track_idx int, score double, source string"


def submissions(rank: RankConfig) -> list[str]:
    """Every rank/<name>/ the rank stage writes: each source, the NCF model's, the blend's and its
    variants (`blend_variants`)."""
    return [*rank.models, *(["ncf"] if rank.ncf_model else []), FINAL, *blend_variants(rank)]


def blend_variants(rank: RankConfig) -> list[str]:
    """The blends other than `final` that the rank stage writes, re-rankings, not single sources: with
    an NCF model and rank.blend.compare_ncf, the blend that differs from final by the NCF score; with
    the autoencoder among the sources and rank.blend.compare_dae, final without it."""
    variants = []
    if rank.ncf_model and rank.blend.compare_ncf:
        variants.append(WITHOUT_NCF if rank.blend.ncf_feature else WITH_NCF)
    if "dae" in rank.models and rank.blend.compare_dae:
        variants.append(WITHOUT_DAE)
    return variants


def _merge_rows(cols: dict[str, np.ndarray], names: np.ndarray, n: int) -> pa.RecordBatch:
    """Whole playlists' rows from every source (priority: the source's place in `names`, SEED for a
    playlist's seeds; r: the source's rank, 0 where it has none and its score orders it) -> each
    playlist's first n tracks in that order (then score descending, then track_idx), a track kept
    where it first occurs, seeds never."""
    pid, track, priority, score = cols["pid"], cols["track_idx"], cols["priority"], cols["score"]
    order = np.lexsort((track, -score, cols["r"], priority, pid))
    _, first = np.unique((pid[order] << 32) | track[order].astype(np.int64), return_index=True)
    kept = np.sort(first)  # where each (playlist, track) first occurs: a seed row where it is a seed
    rows = order[kept[priority[order[kept]] != SEED]]
    rank = ranks_in_groups(pid[rows])
    rows, rank = rows[rank < n], rank[rank < n]
    return pa.RecordBatch.from_pydict(
        {
            "pid": pid[rows],
            "rank": rank.astype(np.int32),
            "track_idx": track[rows],
            "score": score[rows],
            "source": pa.array(names[priority[rows]], pa.string()),
        }
    )


def _merged(sources: list[tuple[str, DataFrame]], queries: Queries, n: int) -> DataFrame:
    """Every source's rows of a playlist in one partition, merged in numpy (`mpdrec.sorted_groups`):
    one shuffle, where Spark's dedupe then window needed two and a sort of all the rows (several
    times faster than a grouped pandas UDF at 100 slices)."""
    parts = [
        df.select(
            "pid",
            "track_idx",
            F.lit(priority).alias("priority"),
            (F.col("rank") if "rank" in df.columns else F.lit(0)).cast("int").alias("r"),
            F.col("score").cast("double").alias("score"),
        )
        for priority, (_, df) in enumerate(sources)
    ]
    if any("rank" not in df.columns for _, df in sources):  # a ranked list has no seeds left
        parts.append(
            queries.seeds.select(
                "pid", "track_idx", F.lit(SEED).alias("priority"), F.lit(0).alias("r"), F.lit(0.0).alias("score")
            )
        )
    names = np.asarray([name for name, _ in sources], dtype=object)

    def merge(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for cols in whole_groups(batches, "pid"):
            yield _merge_rows(cols, names, n)

    return sorted_by(reduce(DataFrame.unionByName, parts), "pid").mapInArrow(merge, ASSEMBLED)


def _unreached(
    sources: list[tuple[str, DataFrame]], n: int, filled: DataFrame | None = None
) -> list[tuple[str, DataFrame]]:
    """`sources` less the rows the merge never reaches: a playlist's rows in every source after a
    ranked one that holds n tracks for it (its rank n - 1: n distinct non-seed tracks, ranks 0 to
    n - 1 in it or, for a list cut below some rank, in a source ahead of it), and in every source
    for the playlists in `filled`. Most playlists are full in their first ranked source: the
    fallbacks behind it, millions of rows, need not be shuffled."""
    kept = []
    for name, df in sources:
        kept.append((name, df if filled is None else df.join(F.broadcast(filled), "pid", "left_anti")))
        if "rank" in df.columns:
            full = df.where(F.col("rank") == n - 1).select("pid")
            filled = full if filled is None else filled.unionByName(full)
    return kept


def assemble(sources: list[tuple[str, DataFrame]], queries: Queries, n: int = SUBMISSION_SIZE) -> DataFrame:
    """pid, rank (0-based), track_idx, score, source: exactly n rows per query playlist.

    Where the first source is a ranked list (`mpdrec.rank.candidates.ranked_list`: a rank column, no
    seeds) holding n tracks for a playlist, that list is the playlist's: only the other playlists go
    through the merge with the fallbacks, each fallback only for the playlists that the sources ahead
    of it leave short."""
    name, first = sources[0]
    if "rank" not in first.columns:
        return _merged(_unreached(sources, n), queries, n)
    full = first.where(F.col("rank") == n - 1).select("pid")
    own = (
        first.join(F.broadcast(full), "pid", "left_semi")
        .where(F.col("rank") < n)
        .select("pid", "rank", "track_idx", F.col("score").cast("double"), F.lit(name).alias("source"))
    )
    return own.unionByName(_merged(_unreached(sources, n, full), queries, n))


def fill_after(
    candidates: DataFrame, sources: list[tuple[str, DataFrame]], queries: Queries, n: int = SUBMISSION_SIZE
) -> DataFrame:
    """What follows a playlist's candidates (pid, track_idx: ranked lists' tracks, no seeds) in any
    ordering of them: `sources` (ranked lists, less the top rows that are candidates) in priority
    order, candidates and duplicates dropped, ranked from the playlist's number of candidates up to
    n (assemble's columns; no rows for a playlist with n candidates or more).

    The NCF model and the blend order the same candidates; what follows them is the same, so it is
    merged once per challenge and `after_candidates` adds it to each."""
    keys = candidates.select("pid", "track_idx", F.lit(0).alias("rank"), F.lit(0.0).alias("score"))
    return _merged([(CANDIDATES, keys), *_unreached(sources, n)], queries, n).where(F.col("source") != CANDIDATES)


def after_candidates(name: str, scored: DataFrame, fill: DataFrame, n: int = SUBMISSION_SIZE) -> DataFrame:
    """assemble([(name, scored), *sources], queries, n) for `scored` (pid, track_idx, score) over the
    candidates that `fill` (fill_after(candidates, sources, queries, n)) follows: the candidates by
    score (ties to the lower track_idx), then the fill."""
    order = Window.partitionBy("pid").orderBy(F.desc("score"), "track_idx")
    ranked = (
        scored.select("pid", "track_idx", F.col("score").cast("double"), F.lit(name).alias("source"))
        .withColumn("rank", (F.row_number().over(order) - 1).cast("int"))
        .where(F.col("rank") < n)
    )
    return ranked.unionByName(fill)
