"""Stage 2a: two held-out challenges built like the official one, from MPD playlists.

Playlists are drawn by a seeded hash of their pid and assigned to the 10 official categories,
strictest first (100 seeds need 105 tracks): `per_category` each for the validation challenge, then
`train_per_category` each, from the playlists left, for the blend-training challenge. Shown seeds are
the first k tracks, or k tracks chosen by a seeded hash of (pid, pos) for the random categories;
every other position is held out. The ground truth is the held-out tracks that occur in the training
data (so a model can recommend them at all; the official challenge likewise holds only MPD tracks),
excluding any that repeat a seed (those can never be recommended). Training = every MPD entry except
both challenges' held-out positions, plus the challenge seeds: no ground truth leaks into training.

The validation challenge is what the report scores, all of it, and nothing is fitted or tuned on it.
The blend-training challenge is what the second stage learns from (the blend's labels) and what the
ALS grid picks its point on: it is ranked by every source exactly as the validation challenge is.

Outputs (`<run_dir>/validation/`): challenge_set.json (the official layout, read back through the
same parser as the real challenge), ground_truth (pid, pos, track_uri, artist_uri), categories (pid,
category, num_samples, ground_truth = scorable hidden tracks), and the same three under `train/` for
the blend-training challenge; holdouts (every hidden position of both, what training excludes).
As in the official set, num_tracks is the playlist's length and num_holdouts = num_tracks - num_samples.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from mpdrec.categories import CATEGORIES
from mpdrec.io.arrow_fs import write_bytes
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join

log = logging.getLogger("mpdrec.split")
POOL_FACTOR = 5  # playlists drawn per held-out slot before categories are assigned
TRAIN_DIR = "train"  # the blend-training challenge, under the validation stage's directory
TRACK_FIELDS = ["pos", "artist_name", "track_uri", "artist_uri", "track_name", "album_uri", "duration_ms", "album_name"]


def default_per_category(num_playlists: int) -> int:
    """1 per 1,000 MPD playlists (1,000 at full scale, like the official challenge), 10..1,000."""
    return min(1_000, max(10, round(num_playlists / 1_000)))


def assign_categories(pool: list[tuple[int, int, bool]], per_category: int) -> dict[int, int]:
    """pid -> category for `pool` [(pid, num_tracks, has_title)] in draw order, strictest first; a
    category that shows the title takes only playlists whose normalised title is not empty."""
    chosen: dict[int, int] = {}
    for cat in sorted(CATEGORIES, key=lambda c: (-c.min_tracks, c.id)):
        picked = [
            pid
            for pid, n, titled in pool
            if pid not in chosen and n >= cat.min_tracks and (titled or not cat.has_title)
        ][:per_category]
        chosen.update((pid, cat.id) for pid in picked)
    return chosen


def default_train_per_category(num_playlists: int) -> int:
    """1 per 100 MPD playlists, 50..1,000: thousands of training queries for the second stage at
    20,000 playlists and more (10,000 at full scale), while a small sample keeps most of its data."""
    return min(1_000, max(50, round(num_playlists / 100)))


def _seed_flags(entries: DataFrame, seed: int) -> DataFrame:
    """Mark each entry of a chosen playlist as a shown seed or a hidden position."""
    order = F.row_number().over(Window.partitionBy("pid").orderBy(F.xxhash64(F.lit(seed), "pid", "pos")))
    return entries.withColumn(
        "is_seed",
        F.when(F.col("random_seeds"), order <= F.col("num_samples")).otherwise(F.col("pos") < F.col("num_samples")),
    )


def training_entries(playlist_tracks: DataFrame, holdouts: DataFrame, challenge_tracks: DataFrame | None) -> DataFrame:
    """(pid, pos, track_uri) the models may learn from: MPD minus hidden positions, plus challenge seeds."""
    train = playlist_tracks.select("pid", "pos", "track_uri").join(
        holdouts.select("pid", "pos"), ["pid", "pos"], "left_anti"
    )
    if challenge_tracks is not None:
        train = train.unionByName(challenge_tracks.select("pid", "pos", "track_uri"))
    return train


def _challenge_json(playlists: list[dict], seeds: list[dict]) -> bytes:
    by_pid: dict[int, list[dict]] = {}
    for s in seeds:
        by_pid.setdefault(s["pid"], []).append({k: s[k] for k in TRACK_FIELDS})
    out = []
    for p in playlists:
        rec: dict[str, Any] = {}
        if p["has_title"]:
            rec["name"] = p["name"]
        tracks = sorted(by_pid.get(p["pid"], []), key=lambda t: t["pos"])
        rec.update(
            {
                "num_holdouts": p["num_tracks"] - len(tracks),
                "pid": p["pid"],
                "num_samples": len(tracks),
                "num_tracks": p["num_tracks"],
                "tracks": tracks,
            }
        )
        out.append(rec)
    doc = {"date": "validation", "version": "mpdrec-validation-v1", "playlists": out}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def _write_challenge(
    spark: SparkSession,
    out_dir: str,
    chosen: dict[int, int],
    entries: DataFrame,
    train_tracks: DataFrame,
    playlists: DataFrame,
    tracks: DataFrame,
) -> dict[str, Any]:
    """One held-out challenge's challenge_set.json, ground_truth and categories under `out_dir`, for
    the playlists of `chosen` (pid -> category) that keep a scorable hidden track; its summary."""
    cats = {c.id: c for c in CATEGORIES}
    pids = spark.createDataFrame([(pid,) for pid in sorted(chosen)], "pid long")
    mine = entries.join(F.broadcast(pids), "pid", "left_semi")
    seeds = mine.where("is_seed")
    truth = (
        mine.where("not is_seed")
        .join(train_tracks, "track_uri", "left_semi")
        .join(seeds.select("pid", "track_uri"), ["pid", "track_uri"], "left_anti")
        .groupBy("pid", "track_uri")
        .agg(F.min("pos").alias("pos"), F.first("artist_uri").alias("artist_uri"))
        .select("pid", "pos", "track_uri", "artist_uri")
    )
    truth.write.mode("overwrite").parquet(join(out_dir, "ground_truth"))
    truth = spark.read.parquet(join(out_dir, "ground_truth"))
    counts = {r.pid: r["count"] for r in truth.groupBy("pid").count().collect()}
    kept = {pid: c for pid, c in chosen.items() if counts.get(pid, 0) > 0}
    meta = {r.pid: r for r in playlists.join(F.broadcast(pids), "pid").select("pid", "name", "num_tracks").collect()}
    rows = [
        {
            "pid": pid,
            "category": c,
            "num_samples": cats[c].num_samples,
            "ground_truth": counts[pid],
            "num_tracks": meta[pid].num_tracks,
            "has_title": cats[c].has_title,
            "name": meta[pid].name,
        }
        for pid, c in sorted(kept.items())
    ]
    spark.createDataFrame(
        [(r["pid"], r["category"], r["num_samples"], r["ground_truth"]) for r in rows],
        "pid long, category int, num_samples int, ground_truth int",
    ).coalesce(1).write.mode("overwrite").parquet(join(out_dir, "categories"))
    seed_rows = (
        seeds.join(F.broadcast(spark.createDataFrame([(p,) for p in kept], "pid long")), "pid")
        .join(tracks.select("track_uri", "track_name", "artist_name", "album_name"), "track_uri")
        .select("pid", *TRACK_FIELDS)
        .collect()
    )
    write_bytes(join(out_dir, "challenge_set.json"), _challenge_json(rows, [r.asDict() for r in seed_rows]))
    return {
        "playlists": len(kept),
        "by_category": {str(c.id): sum(1 for v in kept.values() if v == c.id) for c in CATEGORIES},
        "dropped_without_ground_truth": len(chosen) - len(kept),
        "ground_truth_rows": sum(counts.values()),
    }


def build_validation(
    spark: SparkSession,
    ingest_dir: str,
    out_dir: str,
    per_category: int | None,
    train_per_category: int | None,
    seed: int,
) -> dict[str, Any]:
    """Write the validation and blend-training challenges under `out_dir`; returns the manifest body."""
    playlists = spark.read.parquet(join(ingest_dir, "playlists"))
    playlist_tracks = spark.read.parquet(join(ingest_dir, "playlist_tracks"))
    tracks = spark.read.parquet(join(ingest_dir, "tracks"))
    challenge_tracks = (
        spark.read.parquet(join(ingest_dir, "challenge_tracks"))
        if HadoopFS(spark).exists(join(ingest_dir, "challenge_tracks"))
        else None
    )
    n_playlists = playlists.count()
    k = per_category or default_per_category(n_playlists)
    k_train = train_per_category or default_train_per_category(n_playlists)
    pool = [
        (r.pid, r.num_tracks, r.titled)
        for r in playlists.select(
            "pid", "num_tracks", (F.length("name_norm") > 0).alias("titled"), F.xxhash64(F.lit(seed), "pid").alias("h")
        )
        .orderBy("h", "pid")
        .limit(POOL_FACTOR * (k + k_train) * len(CATEGORIES))
        .collect()
    ]
    chosen = assign_categories(pool, k)
    train_chosen = assign_categories([p for p in pool if p[0] not in chosen], k_train)
    cats = {c.id: c for c in CATEGORIES}
    chosen_df = spark.createDataFrame(
        [
            (pid, c, cats[c].num_samples, cats[c].random_seeds, cats[c].has_title)
            for pid, c in sorted({**chosen, **train_chosen}.items())
        ],
        "pid long, category int, num_samples int, random_seeds boolean, has_title boolean",
    )
    entries = _seed_flags(playlist_tracks.join(F.broadcast(chosen_df), "pid"), seed).cache()
    holdouts = entries.where("not is_seed").select("pid", "pos", "track_uri", "artist_uri")
    holdouts.write.mode("overwrite").parquet(join(out_dir, "holdouts"))
    train_tracks = training_entries(playlist_tracks, holdouts, challenge_tracks).select("track_uri").distinct()
    summary = _write_challenge(spark, out_dir, chosen, entries, train_tracks, playlists, tracks)
    train = _write_challenge(spark, join(out_dir, TRAIN_DIR), train_chosen, entries, train_tracks, playlists, tracks)
    entries.unpersist()
    log.info(
        "validation: %d playlists (%s per category), %d dropped for lack of ground truth; blend training: "
        "%d playlists (%s per category)",
        summary["playlists"],
        k,
        summary["dropped_without_ground_truth"],
        train["playlists"],
        k_train,
    )
    return {"per_category": k, **summary, "train": {"per_category": k_train, **train}}
