"""The Dice playlist-neighbour baseline, as the MPD study ran it, in Spark over `<run_dir>/ingest`.

A seeded `held_out_share` of the MPD playlists (by pid hash) is held out and the rest are the bank.
Each held-out playlist with at least two tracks hides its first track (position 0); its other tracks
A are compared with every bank playlist's tracks S by the Dice coefficient 2|A & S| / (|A| + |S|), the
`neighbours` most similar are kept (ties to the lower pid), and the `recommendations` tracks the
neighbours hold most often (then the larger summed Dice, then the bank's popularity, then the URI),
none of A, are recommended. A hit is the hidden track among them; the hit rate is the share of
held-out playlists with a hit (the study: 0.166). Popularity (the bank's most common tracks, none of
A) is scored the same way, as the reference.

Pairs come from a join of A's tracks with the bank's postings, so only playlists sharing a track are
ever compared; a track in more than `max_playlists_per_track` bank playlists is sampled down (seeded)
for that join, which bounds the pairs a hit song makes at full MPD scale (|S| stays exact).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from mpdrec.config import Config, DiceConfig
from mpdrec.errors import InputError
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join
from mpdrec.io.report import write_report
from mpdrec.metrics.bootstrap import mean_interval, paired_difference
from mpdrec.report_plots import figure, png
from mpdrec.spark import job_step, one_row, seeded_share
from mpdrec.upstream import INGEST, run_after

STAGE = "dice"


def held_out(entries: DataFrame, share: float, seed: int) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(seeds: pid, track_uri; hidden: pid, track_uri; bank: pid, track_uri), each (pid, track) once."""
    entries = entries.select("pid", "pos", "track_uri")
    out = entries.where(seeded_share(seed, "pid") < share)
    bank = entries.where(seeded_share(seed, "pid") >= share).select("pid", "track_uri").distinct()
    hidden = out.where("pos = 0").select("pid", "track_uri")
    seeds = out.where("pos > 0").select("pid", "track_uri").distinct().join(hidden, ["pid", "track_uri"], "left_anti")
    # a playlist whose tracks are all its first track has nothing to compare
    hidden = hidden.join(seeds.select("pid").distinct(), "pid")
    return seeds, hidden, bank


def recommend(seeds: DataFrame, bank: DataFrame, cfg: DiceConfig, seed: int) -> DataFrame:
    """(pid, track_uri, rank): each held-out playlist's Dice-neighbour recommendations."""
    bank_size = bank.groupBy(F.col("pid").alias("b")).agg(F.count("*").alias("size_b"))
    popularity = bank.groupBy("track_uri").agg(F.count("*").alias("playlists"))
    keep = F.least(F.lit(1.0), F.lit(float(cfg.max_playlists_per_track)) / F.col("playlists"))
    postings = (
        bank.join(popularity, "track_uri")
        .where(seeded_share(seed, "pid", "track_uri") < keep)
        .select("track_uri", F.col("pid").alias("b"))
    )
    size_a = seeds.groupBy("pid").agg(F.count("*").alias("size_a"))
    by_query = Window.partitionBy("pid").orderBy(F.desc("dice"), "b")
    neighbours = (
        seeds.join(postings, "track_uri")
        .groupBy("pid", "b")
        .agg(F.count("*").alias("overlap"))
        .join(size_a, "pid")
        .join(bank_size, "b")
        .withColumn("dice", 2 * F.col("overlap") / (F.col("size_a") + F.col("size_b")))
        .withColumn("k", F.row_number().over(by_query))
        .where(F.col("k") <= cfg.neighbours)
    )
    candidates = (
        neighbours.select("pid", "b", "dice")
        .join(bank.withColumnRenamed("pid", "b"), "b")
        .join(seeds, ["pid", "track_uri"], "left_anti")
        .groupBy("pid", "track_uri")
        .agg(F.count("*").alias("holders"), F.sum("dice").alias("dice"))
        .join(popularity, "track_uri")
    )
    order = Window.partitionBy("pid").orderBy(F.desc("holders"), F.desc("dice"), F.desc("playlists"), "track_uri")
    return (
        candidates.withColumn("rank", F.row_number().over(order) - 1)
        .where(F.col("rank") < cfg.recommendations)
        .select("pid", "track_uri", "rank")
    )


def popular(seeds: DataFrame, bank: DataFrame, n: int) -> DataFrame:
    """(pid, track_uri, rank): the bank's most common tracks, none of the playlist's seeds."""
    most_seeds = int(one_row(seeds.groupBy("pid").count().agg(F.max("count")))[0])
    top = (
        bank.groupBy("track_uri")
        .agg(F.count("*").alias("playlists"))
        .orderBy(F.desc("playlists"), "track_uri")
        .limit(n + most_seeds)
    )
    order = Window.partitionBy("pid").orderBy(F.desc("playlists"), "track_uri")
    return (
        seeds.select("pid")
        .distinct()
        .crossJoin(F.broadcast(top))
        .join(seeds, ["pid", "track_uri"], "left_anti")
        .withColumn("rank", F.row_number().over(order) - 1)
        .where(F.col("rank") < n)
        .select("pid", "track_uri", "rank")
    )


def hits(hidden: DataFrame, recs: DataFrame) -> np.ndarray:
    """1.0 / 0.0 per held-out playlist (ordered by pid): whether its hidden track was recommended."""
    found = hidden.join(recs.select("pid", "track_uri", F.lit(1.0).alias("hit")), ["pid", "track_uri"], "left")
    return found.orderBy("pid").select(F.coalesce("hit", F.lit(0.0))).toPandas().iloc[:, 0].to_numpy(np.float64)


def _figure(body: dict[str, Any]) -> bytes:
    fig, axes = figure(1, 5)
    ax, names = axes[0][0], ["dice", "popularity"]
    h = [body["hit_rate"][m] for m in names]
    ax.bar(
        names,
        [x["mean"] for x in h],
        yerr=[[x["mean"] - x["low"] for x in h], [x["high"] - x["mean"] for x in h]],
        color=["tab:blue", "tab:grey"],
    )
    ax.axhline(body["study_hit_rate"], color="tab:red", linestyle="--", label="the study (real MPD)")
    ax.set_ylabel(f"hit rate of the hidden first track in {body['recommendations']}")
    ax.legend(fontsize=8)
    return png(fig)


def run_study(spark: SparkSession, cfg: Config, ingest_dir: str, out_dir: str) -> dict[str, Any]:
    d = cfg.dice
    seeds, hidden, bank = held_out(spark.read.parquet(join(ingest_dir, "playlist_tracks")), d.held_out_share, cfg.seed)
    seeds, hidden, bank = seeds.cache(), hidden.cache(), bank.cache()
    n = hidden.count()
    if n == 0:
        raise InputError(
            f"dice: no held-out playlist with two or more tracks in {ingest_dir} "
            f"(dice.held_out_share={d.held_out_share})"
        )
    with job_step(spark, f"dice: {d.neighbours} neighbours of {n} held-out playlists"):
        dice_hits = hits(hidden, recommend(seeds, bank, d, cfg.seed))
    with job_step(spark, "dice: popularity"):
        pop_hits = hits(hidden, popular(seeds, bank, d.recommendations))
    for df in (seeds, hidden, bank):
        df.unpersist()
    body: dict[str, Any] = {
        "held_out": int(n),
        "neighbours": d.neighbours,
        "recommendations": d.recommendations,
        "hit_rate": {"dice": mean_interval(dice_hits, cfg.seed), "popularity": mean_interval(pop_hits, cfg.seed)},
        "dice_minus_popularity": paired_difference(dice_hits, pop_hits, cfg.seed),
        "study_hit_rate": 0.166,
    }
    h = body["hit_rate"]
    lines = [
        "# Dice playlist neighbours",
        "",
        f"{n:,} held-out playlists, first track hidden; {d.neighbours} most similar bank playlists (Dice); "
        f"{d.recommendations} recommendations.",
        "",
        "| model | hit rate [95%] |",
        "|---|---|",
    ]
    lines += [f"| {m} | {h[m]['mean']:.4f} [{h[m]['low']:.4f}, {h[m]['high']:.4f}] |" for m in ("dice", "popularity")]
    diff = body["dice_minus_popularity"]
    lines += [
        "",
        f"Dice minus popularity: {diff['difference']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}] "
        "(paired bootstrap). The study reported a hit rate of 0.166 on the real MPD.",
        "",
        "![hit rate](report_dice.png)",
        "",
    ]
    write_report(HadoopFS(spark), out_dir, body, "\n".join(lines), {"report_dice.png": _figure(body)})
    return body


def run_dice(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    return run_after(
        spark,
        cfg,
        STAGE,
        *INGEST,
        ("seed", "dice"),
        lambda ingest, staging: run_study(spark, cfg, ingest, staging),
        force,
    )
