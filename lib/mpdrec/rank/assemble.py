"""The single place where a playlist's final list is assembled: sources in priority order (the
model, then its fallbacks), seeds dropped, duplicates dropped (first occurrence wins), cut to n."""
from __future__ import annotations

from functools import reduce
from typing import Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mpdrec.config import RankConfig
from mpdrec.models.data import Queries

SUBMISSION_SIZE = 500
FINAL = "final"  # the blend's submission, beside one per single source (rank.models)
SEED = -1  # the priority of a playlist's seeds in the merge: never listed
ASSEMBLED = "pid long, rank int, track_idx int, score double, source string"


def submissions(rank: RankConfig) -> list[str]:
    """Every rank/<name>/ the rank stage writes: each source, the NCF model's, the blend's."""
    return [*rank.models, *(["ncf"] if rank.ncf_model else []), FINAL]


def _merge(names: list[str], n: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """One playlist's rows from every source (priority: the source's place in `names`, SEED for its
    seeds; r: the source's rank, 0 where it has none and its score orders it) -> its n tracks."""
    def merge(group: pd.DataFrame) -> pd.DataFrame:
        priority, track = group["priority"].to_numpy(), group["track_idx"].to_numpy()
        score = group["score"].to_numpy()
        order = np.lexsort((track, -score, group["r"].to_numpy(), priority))
        order = order[~np.isin(track[order], track[priority == SEED])]
        _, first = np.unique(track[order], return_index=True)  # each track where it first occurs
        rows = order[np.sort(first)[:n]]
        return pd.DataFrame({"pid": group["pid"].iloc[0], "rank": np.arange(len(rows), dtype=np.int32),
                             "track_idx": track[rows], "score": score[rows],
                             "source": np.asarray(names, dtype=object)[priority[rows]]})
    return merge


def _merged(sources: list[tuple[str, DataFrame]], queries: Queries, n: int) -> DataFrame:
    """Every source's rows of a playlist in one group, merged in numpy: one shuffle by pid, where
    Spark's dedupe then window needed two shuffles and a sort of all the rows."""
    parts = [df.select("pid", "track_idx", F.lit(priority).alias("priority"),
                       (F.col("rank") if "rank" in df.columns else F.lit(0)).cast("int").alias("r"),
                       F.col("score").cast("double").alias("score"))
             for priority, (_, df) in enumerate(sources)]
    if any("rank" not in df.columns for _, df in sources):  # a ranked list has no seeds left
        parts.append(queries.seeds.select("pid", "track_idx", F.lit(SEED).alias("priority"), F.lit(0).alias("r"),
                                          F.lit(0.0).alias("score")))
    return (reduce(DataFrame.unionByName, parts).groupBy("pid")
            .applyInPandas(_merge([name for name, _ in sources], n), ASSEMBLED))


def assemble(sources: list[tuple[str, DataFrame]], queries: Queries, n: int = SUBMISSION_SIZE) -> DataFrame:
    """pid, rank (0-based), track_idx, score, source: exactly n rows per query playlist.

    Where the first source is a ranked list (`mpdrec.rank.candidates.ranked_list`: a rank column, no
    seeds) holding n tracks for a playlist, that list is the playlist's: only the other playlists go
    through the merge with the fallbacks."""
    name, first = sources[0]
    if "rank" not in first.columns:
        return _merged(sources, queries, n)
    full = F.broadcast(first.where(F.col("rank") == n - 1).select("pid"))
    own = first.join(full, "pid", "left_semi").where(F.col("rank") < n).select(
        "pid", "rank", "track_idx", F.col("score").cast("double"), F.lit(name).alias("source"))
    rest = _merged([(s, df.join(full, "pid", "left_anti")) for s, df in sources], queries, n)
    return own.unionByName(rest)
