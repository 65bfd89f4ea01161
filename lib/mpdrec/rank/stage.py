"""Stage 6 (for now: single sources): rank every query playlist with each model, write and validate the
submissions for the validation challenge and, when given, the real challenge.

Outputs (`<run_dir>/rank/<model>/`): submission.csv (validation challenge) and
challenge_submission.csv (real challenge), each with a `*_recommendations` Parquet copy with scores.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from pyspark.sql import DataFrame, SparkSession

from mpdrec.config import Config
from mpdrec.etl.slice_tables import process_file
from mpdrec.etl.stages import upstream
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.models import als, cooc, popularity, title
from mpdrec.models.data import Queries, RankingData
from mpdrec.rank.assemble import SUBMISSION_SIZE, assemble
from mpdrec.rank.publish import publish
from mpdrec.spark import job_step

log = logging.getLogger("mpdrec.rank")
FALLBACKS = {"popularity": [], "title": ["popularity"], "cooc": ["title", "popularity"],
             "als": ["title", "popularity"]}


def _sources(spark: SparkSession, cfg: Config) -> dict[str, Callable[[RankingData, Queries], DataFrame]]:
    r, n = cfg.rank, SUBMISSION_SIZE
    als_dir = join(to_uri(cfg.paths.run_dir), "als")
    return {
        "als": lambda d, q: als.recommend(als.Factors.load(spark, als_dir), q, r.als_top_n, r.block_rows),
        "popularity": lambda d, q: popularity.recommend(d, q, n),
        "title": lambda d, q: title.recommend(d, q, n, r.title_min_playlists),
        "cooc": lambda d, q: cooc.recommend(d, q, n, r.cooc_neighbours, r.cooc_beta,
                                            r.cooc_max_playlists_per_seed, cfg.seed),
    }


def _queries(spark: SparkSession, data: RankingData, tables_dir: str) -> tuple[Queries, dict[int, set[str]]]:
    """The queries, and each playlist's seed URIs (what the submission validator checks against)."""
    seeds: dict[int, set[str]] = {
        r.pid: set() for r in spark.read.parquet(join(tables_dir, "challenge_playlists")).select("pid").collect()}
    for r in spark.read.parquet(join(tables_dir, "challenge_tracks")).select("pid", "track_uri").collect():
        seeds[r.pid].add(r.track_uri)
    return Queries.load(spark, data, tables_dir), seeds


def _rank_challenge(spark: SparkSession, cfg: Config, data: RankingData, tables_dir: str, staging: str,
                    name: str) -> dict[str, Any]:
    queries, seeds = _queries(spark, data, tables_dir)
    sources = _sources(spark, cfg)
    out: dict[str, Any] = {}
    for model in cfg.rank.models:
        started = time.time()
        with job_step(spark, f"rank: {model} for the {name} challenge"):
            chain = [(m, sources[m](data, queries)) for m in [model, *FALLBACKS[model]]]
            ranked = assemble(chain, queries).cache()
            info = publish(ranked, data, seeds, join(staging, model), name, cfg.rank.team_name, cfg.rank.team_email)
            info["file"] = f"rank/{model}/{name}.csv"
            ranked.unpersist()
        info["seconds"] = round(time.time() - started, 2)
        log.info("rank: %s %s: %d playlists in %.1fs", model, name, info["playlists"], info["seconds"])
        out[model] = info
    return out


def run_rank(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    inputs = [upstream(fs, run_dir, s, j) for s, j in [("ingest", "jobs/ingest_mpd.py"),
                                                        ("validation", "jobs/build_interactions.py"),
                                                        ("interactions", "jobs/build_interactions.py")]]
    if "als" in cfg.rank.models:
        inputs.append(upstream(fs, run_dir, "als", "jobs/train_als.py"))
    fp = fingerprint(inputs, cfg.section_digest("seed", "rank"))

    def build(staging: str) -> dict[str, Any]:
        data = RankingData.load(spark, join(run_dir, "interactions"))
        # the validation challenge goes through the same parser as the real one
        process_file(join(run_dir, "validation", "challenge_set.json"), "challenge", join(staging, "validation_queries"))
        body = {"submission": _rank_challenge(spark, cfg, data, join(staging, "validation_queries"), staging, "submission")}
        fs.delete(join(staging, "validation_queries"))
        if fs.exists(join(run_dir, "ingest", "challenge_playlists")):
            body["challenge_submission"] = _rank_challenge(spark, cfg, data, join(run_dir, "ingest"), staging,
                                                           "challenge_submission")
        return body

    return run_stage(fs, run_dir, "rank", fp, build, force=force)
