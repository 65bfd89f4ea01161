"""The held-out users that the ALS grid is scored on in a table run (`jobs/ingest_table.py`): a table
has no playlists to build a challenge from, so this is its counterpart of the MPD's blend-training
challenge.

Up to `als.holdout_users` users with at least two interactions are drawn by a seeded hash of their
id; each hides its latest `als.holdout_share` of interactions (by `pos`, the table's time order; at
least one hidden and at least one kept), as a challenge playlist hides its last tracks. The grid trains
on everything else. For each held-out user every item is ranked, the user's training items left out,
and the top `rank.als_top_n` are scored as a challenge playlist is: R-precision, NDCG and clicks
(on items alone: a table has no artists to credit) and Hu, Koren and Volinsky's MPR. Popularity
(the items with the most training users) is scored on the same users, so that the report can say
with a paired interval what ALS adds to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from mpdrec.blocked_topn import percentile_ranks, top_n
from mpdrec.errors import InputError
from mpdrec.metrics.bootstrap import paired_difference
from mpdrec.metrics.recsys2018 import per_playlist_scores, summarise
from mpdrec.models import als
from mpdrec.spark import one_row, seeded_share

COMPARED = ("r_precision", "ndcg", "clicks")


@dataclass(frozen=True)
class TableHoldout:
    train: DataFrame  # the interactions without the hidden rows (cached)
    queries: DataFrame  # pid (the held-out user's playlist_idx, as a long), exclude array<int>: its training items
    hidden: DataFrame  # pid, track_idx: what each held-out user hid
    truth: pd.DataFrame  # pid, track, artist: the hidden items (the item's id as its artist too: no artist credit)

    def release(self) -> None:
        for cached in (self.train, self.queries, self.hidden):
            cached.unpersist()


def split(interactions: DataFrame, users: int, share: float, seed: int) -> TableHoldout:
    """Hold out up to `users` users' latest `share` of interactions (see the module's docstring)."""
    chosen = (
        interactions.groupBy("playlist_idx")
        .agg(F.count("*").alias("n"))
        .where(F.col("n") >= 2)
        .orderBy(seeded_share(seed, "playlist_idx"), "playlist_idx")
        .limit(users)
        .select(
            "playlist_idx",
            F.least(F.col("n") - 1, F.greatest(F.lit(1), F.round(F.col("n") * share).cast("int"))).alias("hide"),
        )
    ).cache()
    if chosen.count() == 0:
        chosen.unpersist()
        raise InputError(
            "the interactions have no user with two or more items: none can hide an item for the "
            "ALS grid to be scored on"
        )
    latest = Window.partitionBy("playlist_idx").orderBy(F.desc("pos"), F.desc("track_idx"))
    hidden = (
        interactions.join(F.broadcast(chosen), "playlist_idx")
        .withColumn("from_end", F.row_number().over(latest))
        .where(F.col("from_end") <= F.col("hide"))
        .select(F.col("playlist_idx").cast("long").alias("pid"), "track_idx")
    ).cache()
    train = interactions.join(
        F.broadcast(hidden.withColumnRenamed("pid", "playlist_idx")), ["playlist_idx", "track_idx"], "left_anti"
    ).cache()
    queries = (
        train.join(F.broadcast(chosen.select("playlist_idx")), "playlist_idx")
        .groupBy("playlist_idx")
        .agg(F.collect_list("track_idx").alias("exclude"))
        .select(F.col("playlist_idx").cast("long").alias("pid"), "exclude")
    ).cache()
    truth = hidden.toPandas()
    truth = pd.DataFrame(
        {
            "pid": truth["pid"],
            "track": truth["track_idx"].astype(np.int64),
            "artist": truth["track_idx"].astype(np.int64),
        }
    )
    chosen.unpersist()
    return TableHoldout(train, queries, hidden, truth)


def _recs(pids: np.ndarray, ranks: np.ndarray, items: np.ndarray) -> pd.DataFrame:
    """A ranking as `per_playlist_scores` reads it (the item's id as its artist)."""
    items = items.astype(np.int64)
    return pd.DataFrame({"pid": pids.astype(np.int64), "rank": ranks, "track": items, "artist": items})


class HoldoutScorer:
    """Scores factors (and popularity) on a `TableHoldout`: per-user scores and their means."""

    def __init__(self, holdout: TableHoldout, n: int, block_rows: int) -> None:
        self.holdout, self.n, self.block_rows = holdout, n, block_rows

    def _queries(self, factors: als.Factors) -> DataFrame:
        """pid, features, exclude: every held-out user (each keeps a training item, so each has factors)."""
        return self.holdout.queries.join(factors.playlists.withColumnRenamed("playlist_idx", "pid"), "pid")

    def per_user(self, factors: als.Factors) -> pd.DataFrame:
        """`per_playlist_scores`' frame for the factors' top n of every held-out user."""
        ranked = top_n(self._queries(factors), factors.tracks, self.n, self.block_rows).toPandas()
        recs = _recs(ranked["pid"].to_numpy(), ranked["rank"].to_numpy(), ranked["track_idx"].to_numpy())
        return per_playlist_scores(recs, self.holdout.truth)

    def score(self, factors: als.Factors) -> dict[str, float]:
        """The metrics' means (R-precision, NDCG, clicks, NDCG by the rules' text) and MPR."""
        means = summarise(self.per_user(factors))["overall"]
        mpr = one_row(
            percentile_ranks(self._queries(factors), factors.tracks, self.holdout.hidden, self.block_rows).agg(
                F.avg("percentile"), F.count("*")
            )
        )
        return {**means, "mpr": float(mpr[0]) if mpr[1] else float("nan"), "mpr_pairs": int(mpr[1])}

    def popularity(self) -> pd.DataFrame:
        """`per_playlist_scores`' frame for popularity: the items with the most training users (then
        the lowest id), the user's training items left out."""
        train = self.holdout.train
        exclude = self.holdout.queries.toPandas()
        need = self.n + int(exclude["exclude"].map(len).max())
        counts = train.groupBy("track_idx").count().orderBy(F.desc("count"), "track_idx").limit(need).toPandas()
        order = counts["track_idx"].to_numpy()
        pids, ranks, items = [], [], []
        for pid, seen in zip(exclude["pid"], exclude["exclude"]):
            top = order[~np.isin(order, seen)][: self.n]
            pids.append(np.full(len(top), pid))
            ranks.append(np.arange(len(top)))
            items.append(top)
        return per_playlist_scores(
            _recs(np.concatenate(pids), np.concatenate(ranks), np.concatenate(items)), self.holdout.truth
        )

    def against_popularity(self, factors: als.Factors, seed: int) -> dict[str, Any]:
        """The held-out users, popularity's means, and the factors minus popularity per metric with
        a paired bootstrap interval (`mpdrec.metrics.bootstrap`)."""
        model, baseline = self.per_user(factors), self.popularity()
        return {
            "users": len(self.holdout.truth["pid"].unique()),
            "hidden": len(self.holdout.truth),
            "popularity": summarise(baseline)["overall"],
            "als_minus_popularity": {
                m: paired_difference(model[m].to_numpy(), baseline[m].to_numpy(), seed) for m in COMPARED
            },
        }
