"""Stage one of the two-stage ranking: every source's ranked list, computed once per challenge, and
the candidate set (the union of each source's top tracks) that the blend re-ranks.

A ranked list is a source's output with seeds removed and ranks 0..keep-1 (ties to the lower
track_idx, as everywhere). The candidate table has one row per (pid, track_idx) in any source's top
`depth` and, per source, its score and rank there (null where the source did not propose it).
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from mpdrec.lists.inputs import Queries
from mpdrec.spark import one_row


def ranked_list(source: DataFrame, queries: Queries, keep: int) -> DataFrame:
    """pid, track_idx, score, rank (0-based): the source's best `keep` non-seed tracks per playlist.
    A source that ranks its own output (a rank column, no seeds: ALS's blocked top-N, cooc) is taken
    as it is, which spares a sort of its rows."""
    if "rank" in source.columns:
        return source.where(F.col("rank") < keep).select(
            "pid", "track_idx", F.col("score").cast("double"), F.col("rank").cast("int")
        )
    order = Window.partitionBy("pid").orderBy(F.desc("score"), "track_idx")
    return (
        source.select("pid", "track_idx", F.col("score").cast("double"))
        .join(queries.seeds, ["pid", "track_idx"], "left_anti")
        .withColumn("rank", F.row_number().over(order) - 1)
        .where(F.col("rank") < keep)
        .withColumn("rank", F.col("rank").cast("int"))
    )


def candidate_table(lists: dict[str, DataFrame], depth: dict[str, int]) -> DataFrame:
    """pid, track_idx, and `<source>_score`, `<source>_rank`, `<source>_rel` for every source in
    `depth`. `_rel` is the score over the playlist's best score from that source: raw scores (cooc's
    sums of overlaps, say) differ in scale from one playlist to the next, their ratio does not.

    Each source's rows fill their own columns (nulls elsewhere) and one aggregation by (pid,
    track_idx) merges them: a source proposes a track once per playlist, so the max of a column is
    that source's value. `pivot` aggregated twice (by source, then by track) and took markedly more
    time on tables of the bench's shape; `_rel` is joined on each source's top rows, not on the
    merged table."""
    names = sorted(depth)
    types = {"score": "double", "rank": "int", "rel": "double"}
    columns = [(s, c) for s in names for c in ("score", "rank")] + [(s, "rel") for s in names]

    def own_columns(s: str) -> DataFrame:
        top = lists[s].where(F.col("rank") == 0).select("pid", F.abs("score").alias("_top"))
        own = {
            "score": F.col("score"),
            "rank": F.col("rank"),
            "rel": F.when(F.col("_top") > 0, F.col("score") / F.col("_top")),
        }
        return (
            lists[s]
            .where(F.col("rank") < depth[s])
            .join(F.broadcast(top), "pid", "left")
            .select(
                "pid",
                "track_idx",
                *[(own[c] if src == s else F.lit(None).cast(types[c])).alias(f"{src}_{c}") for src, c in columns],
            )
        )

    # partitioned by pid, which the grouping by (pid, track_idx) keeps: ranking the candidates (a
    # window by pid over the NCF or blend score) needs no second shuffle; and sorted by pid within
    # the partitions, which the feature pass needs (whole playlists a batch) and would otherwise get
    # by sorting the wide feature rows
    return (
        reduce(DataFrame.unionByName, map(own_columns, names))
        .repartition("pid")
        .groupBy("pid", "track_idx")
        .agg(*[F.max(f"{s}_{c}").alias(f"{s}_{c}") for s, c in columns])
        .sortWithinPartitions("pid")
    )


def candidate_recall(candidates: DataFrame, truth: DataFrame, sources: list[str]) -> dict[str, float]:
    """Share of hidden (pid, track_idx) rows that each source's candidates reach, and their union:
    an upper bound on what any re-ranking of the candidates can find. The hidden tracks (a
    validation challenge's, well under a million rows) are broadcast: the candidates, millions of
    rows, are not shuffled."""
    hidden = truth.select("pid", "track_idx")
    n = hidden.count()
    hits = candidates.join(F.broadcast(hidden), ["pid", "track_idx"])
    row = one_row(
        hits.agg(
            *[F.count(f"{s}_rank").alias(s) for s in sources],
            F.count(F.coalesce(*[F.col(f"{s}_rank") for s in sources])).alias("union"),
        )
    )
    return {k: (row[k] / n if n else 0.0) for k in [*sources, "union"]}
