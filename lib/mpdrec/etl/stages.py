"""The MPD pipeline's data stages after ingest (validation, interactions, negatives): each reads its
upstream stages' manifests as inputs, so a stage reruns exactly when something it depends on changed."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from mpdrec.config import NEGATIVE_DRAW_KEYS, Config, stable_digest
from mpdrec.errors import InputError
from mpdrec.etl.index import build_interactions
from mpdrec.etl.negatives import build_positives, playlist_subset
from mpdrec.etl.split import build_validation
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import has_glob, join, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.spark import job_step, one_row
from mpdrec.upstream import INGEST, INTERACTIONS, VALIDATION, upstream


def negatives_upstream(cfg: Config) -> list[tuple[str, str]]:
    """What jobs/sample_negatives.py reads: the interactions, unless negatives.input names a table."""
    return [INTERACTIONS] if cfg.negatives.input is None else []


def run_validation(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    inputs = [upstream(fs, run_dir, *INGEST)]
    fp = fingerprint(inputs, cfg.section_digest("seed", "validation"))

    def build(staging: str) -> dict[str, Any]:
        with job_step(spark, "build_interactions: validation challenge"):
            return build_validation(
                spark,
                join(run_dir, "ingest"),
                staging,
                cfg.validation.per_category,
                cfg.validation.train_per_category,
                cfg.seed,
            )

    return run_stage(fs, run_dir, "validation", fp, build, force=force)


def run_interactions(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    inputs = [upstream(fs, run_dir, *INGEST), upstream(fs, run_dir, *VALIDATION)]
    fp = fingerprint(inputs, cfg.section_digest("interactions"))

    def build(staging: str) -> dict[str, Any]:
        with job_step(spark, "build_interactions: ids and interactions"):
            return build_interactions(
                spark, join(run_dir, "ingest"), join(run_dir, "validation"), staging, cfg.interactions.files
            )

    return run_stage(fs, run_dir, "interactions", fp, build, force=force)


def run_negatives(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    if cfg.negatives.input is None:
        source = join(run_dir, "interactions", "data")
        inputs = [upstream(fs, run_dir, *s) for s in negatives_upstream(cfg)]
    else:
        source = to_uri(cfg.negatives.input)
        inputs = fs.glob(source if has_glob(source) else join(source, "*.parquet"))
        if not inputs:
            raise InputError(f"config key 'negatives.input': no Parquet files in {cfg.negatives.input}")
    written_keys = {k: v for k, v in cfg.as_dict()["negatives"].items() if k not in NEGATIVE_DRAW_KEYS}
    fp = fingerprint(inputs, stable_digest({"seed": cfg.seed, "negatives": written_keys}))

    def build(staging: str) -> dict[str, Any]:
        interactions = spark.read.parquet(source)
        num_tracks = int(one_row(interactions.agg({"track_idx": "max"}))[0]) + 1
        n = cfg.negatives
        interactions = playlist_subset(interactions, n.subset, n.subset_size, n.subset_track, cfg.seed)
        subset: dict[str, Any] = {"how": n.subset}
        if n.subset != "all":
            subset |= {
                "playlists": interactions.select("playlist_idx").distinct().count(),
                "track": None if n.subset == "random" else (n.subset_track or 0),
            }
        with job_step(
            spark,
            f"sample_negatives: training positives in {n.shards} shards, {n.eval_playlists} leave-one-out playlists",
        ):
            written = build_positives(
                spark,
                interactions,
                num_tracks,
                join(staging, "data"),
                n.shards,
                cfg.seed,
                join(staging, "eval"),
                n.eval_playlists,
                n.eval_negatives,
            )
        return {"subset": subset} | written

    return run_stage(fs, run_dir, "negatives", fp, build, force=force)
