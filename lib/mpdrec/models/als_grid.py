"""The ALS stage: train every grid point (rank x alpha x regParam), score each on the blend-training
challenge (the validation challenge stays out of sample for the report), keep the best as
`<run_dir>/als/` (the factors the ranking job uses).

Each point is scored the way its submission would be: ALS top-N with title and popularity as the
fallbacks (title-only playlists have no factors), with the official metrics (R-precision, NDCG,
clicks), plus Hu, Koren and Volinsky's expected percentile ranking (MPR: 0 = every hidden track
first, 0.5 = random). Finished points are recorded in the staging directory, so a rerun after a
failure trains only the points that were not finished.

On a table run (`jobs/ingest_table.py`: no challenge) each point is scored on held-out users
instead (`mpdrec.models.table_holdout`, the same metrics on items alone), the best point is compared
with popularity on them (`holdout` in the manifest), and it is then fitted again on every interaction,
so that the published factors cover the hidden items too.

Outputs: `model/` (Spark's ALSModel), `playlist_factors/`, `track_factors/` (Parquet:
playlist_idx / track_idx, features array<float>), `grid.json` (every point) and the manifest.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.config import Config, stable_digest
from mpdrec.etl.slice_tables import process_file
from mpdrec.etl.table_index import is_table_run
from mpdrec.io.fs import FileStore, HadoopFS
from mpdrec.io.paths import join, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.lists.assemble import SUBMISSION_SIZE, assemble
from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.lists.scoring import ValidationTruth, challenge_dir, hidden_track_ids
from mpdrec.models import als, popularity, title
from mpdrec.models.als_progress import logged_iterations
from mpdrec.models.table_holdout import HoldoutScorer, split
from mpdrec.spark import job_step, one_row
from mpdrec.upstream import upstream

log = logging.getLogger("mpdrec.als")
GRID_FILE = "grid.json"
HOLDOUT_FILE = "holdout.json"  # table runs: the best point against popularity on the held-out users
LOWER_IS_BETTER = {"clicks", "mpr"}


def _best(grid: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The grid entry with the best `metric` (the first of equals)."""
    return (min if metric in LOWER_IS_BETTER else max)(grid, key=lambda g: g[metric])


class _ChallengeEvaluator:
    """Everything a grid point is scored against on the MPD, built once: the blend-training
    challenge's queries, the fallback rankings, the hidden tracks and the official-metric scorer."""

    def __init__(self, spark: SparkSession, cfg: Config, run_dir: str, staging: str) -> None:
        self.cfg = cfg
        self.data = RankingData.load(spark, join(run_dir, "interactions"))
        self.training = self.data.interactions  # the challenges' hidden tracks were never in it
        tables = join(staging, "train_queries")
        held_out = challenge_dir(run_dir, "train")  # the validation challenge stays out of sample for the report
        process_file(join(held_out, "challenge_set.json"), "challenge", tables)
        self.queries = Queries.load(spark, self.data, tables)
        self.truth = ValidationTruth.load(spark, run_dir, "train")
        self.fallbacks = [
            ("title", title.recommend(self.data, self.queries, SUBMISSION_SIZE, cfg.rank.title_min_playlists).cache()),
            ("popularity", popularity.recommend(self.data, self.queries, SUBMISSION_SIZE).cache()),
        ]
        self.targets = hidden_track_ids(spark, held_out, self.data.track_ids).cache()

    def score(self, factors: als.Factors) -> dict[str, float]:
        r = self.cfg.rank
        ranked = assemble(
            [("als", als.recommend(factors, self.queries, r.als_top_n, r.block_rows)), *self.fallbacks], self.queries
        )
        scores = self.truth.score_ranking(ranked)["overall"]
        mpr = one_row(
            als.percentiles(factors, self.queries, self.targets, r.block_rows).agg(F.avg("percentile"), F.count("*"))
        )
        return {**scores, "mpr": float(mpr[0]) if mpr[1] else float("nan"), "mpr_pairs": int(mpr[1])}

    def release(self) -> None:
        self.targets.unpersist()


class _HoldoutEvaluator(HoldoutScorer):
    """A table run's grid scoring: its held-out users (`mpdrec.models.table_holdout`)."""

    def __init__(self, spark: SparkSession, cfg: Config, run_dir: str) -> None:
        a = cfg.als
        interactions = spark.read.parquet(join(run_dir, "interactions", "data"))
        super().__init__(
            split(interactions, a.holdout_users, a.holdout_share, cfg.seed), cfg.rank.als_top_n, cfg.rank.block_rows
        )
        self.training = self.holdout.train

    def release(self) -> None:
        self.holdout.release()


def _train_point(
    spark: SparkSession, cfg: Config, ratings: DataFrame, point: dict[str, Any], out_dir: str
) -> tuple[als.Factors, float]:
    """Fit one point and save model and factors under out_dir; (factors, seconds per iteration)."""
    started = time.perf_counter()
    with logged_iterations(spark, cfg.als.max_iter, f"als {point}"):
        model = als.estimator(cfg.als, point["rank"], point["alpha"], point["reg_param"], cfg.seed).fit(ratings)
        factors = als.Factors.of(model)
        factors.save(out_dir)
    seconds = time.perf_counter() - started  # factors are computed lazily: saving them ends the training
    model.write().overwrite().save(join(out_dir, "model"))
    return als.Factors.load(spark, out_dir), seconds / cfg.als.max_iter


def _read_grid(fs: FileStore, uri: str) -> list[dict[str, Any]]:
    return json.loads(fs.read_text(uri)) if fs.exists(uri) else []


def run_als(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    table = is_table_run(fs, run_dir)
    r, a = cfg.rank, cfg.als
    if table:
        inputs = [upstream(fs, run_dir, "interactions", "jobs/ingest_table.py")]
        scoring = [r.als_top_n, r.block_rows, a.holdout_users, a.holdout_share]
    else:
        inputs = [upstream(fs, run_dir, s, "jobs/build_interactions.py") for s in ("validation", "interactions")]
        scoring = [r.als_top_n, r.block_rows, r.title_min_playlists]
    config = {k: v for k, v in a.__dict__.items() if table or not k.startswith("holdout_")}
    fp = fingerprint(inputs, stable_digest({"seed": cfg.seed, "als": config, "scoring": scoring}))
    points, metric = a.points(), a.select

    def build(staging: str) -> dict[str, Any]:
        if a.checkpoint_interval:
            spark.sparkContext.setCheckpointDir(join(staging, "_checkpoints"))
        grid_uri = join(staging, GRID_FILE)
        grid = _read_grid(fs, grid_uri)  # points finished by an interrupted try
        with job_step(spark, "train_als: " + ("held-out users" if table else "validation queries and fallbacks")):
            evaluator = (
                _HoldoutEvaluator(spark, cfg, run_dir) if table else _ChallengeEvaluator(spark, cfg, run_dir, staging)
            )
            ratings = als.ratings(evaluator.training, a.weighting, a.eps).cache()
        for i, point in enumerate(points):
            if any(g["point"] == point for g in grid):
                log.info("als grid %d/%d: %s already scored (resumed)", i + 1, len(points), point)
                continue
            with job_step(spark, f"train_als: grid point {i + 1}/{len(points)} {point}"):
                factors, per_iter = _train_point(spark, cfg, ratings, point, join(staging, "points", str(i)))
                started = time.perf_counter()
                scores = evaluator.score(factors)
            entry = {
                "point": point,
                "index": i,
                **scores,
                "seconds_per_iteration": round(per_iter, 3),
                "score_seconds": round(time.perf_counter() - started, 2),
            }
            grid.append(entry)
            best = _best(grid, metric)
            for g in grid:  # only the best point's model and factors are kept
                if g is not best and fs.exists(join(staging, "points", str(g["index"]))):
                    fs.delete(join(staging, "points", str(g["index"])))
            fs.write_text(grid_uri, json.dumps(grid, indent=1))
            log.info(
                "als grid %d/%d: rank %d alpha %g reg %g: ndcg %.4f r-prec %.4f clicks %.2f mpr %.4f "
                "(%.1fs/iter, scored in %.1fs)%s",
                i + 1,
                len(points),
                point["rank"],
                point["alpha"],
                point["reg_param"],
                scores["ndcg"],
                scores["r_precision"],
                scores["clicks"],
                scores["mpr"],
                per_iter,
                entry["score_seconds"],
                "  best so far" if best is entry else "",
            )
        ratings.unpersist()
        best = _best(grid, metric)
        chosen = join(staging, "points", str(best["index"]))
        body: dict[str, Any] = {}
        if isinstance(evaluator, _HoldoutEvaluator):
            body["holdout"] = _publish_refit(spark, cfg, fs, evaluator, best["point"], chosen, run_dir, staging)
        else:
            for part in ("model", als.PLAYLIST_FACTORS, als.TRACK_FACTORS):
                if fs.exists(join(chosen, part)):  # else moved by an interrupted try
                    fs.delete(join(staging, part))
                    fs.rename(join(chosen, part), join(staging, part))
        for leftover in ("points", "train_queries", "_checkpoints"):
            fs.delete(join(staging, leftover))
        evaluator.release()
        return {
            "best": best["point"],
            "select": metric,
            "metrics": {k: best[k] for k in ("r_precision", "ndcg", "clicks", "mpr")},
            "grid": sorted(grid, key=lambda g: g["index"]),
            "max_iter": a.max_iter,
            "weighting": a.weighting,
            **body,
        }

    return run_stage(fs, run_dir, "als", fp, build, force=force, resume=not force)


def _publish_refit(
    spark: SparkSession,
    cfg: Config,
    fs: FileStore,
    evaluator: _HoldoutEvaluator,
    point: dict[str, Any],
    chosen: str,
    run_dir: str,
    staging: str,
) -> dict[str, Any]:
    """A table run's end of the grid: the best point (its factors in `chosen`) against popularity
    on the held-out users, kept in staging's HOLDOUT_FILE so that a resumed try need not score it
    again; then the point fitted on every interaction into staging, as the published factors."""
    uri = join(staging, HOLDOUT_FILE)
    if not fs.exists(uri):
        with job_step(spark, "train_als: the best point against popularity on the held-out users"):
            fs.write_text(uri, json.dumps(evaluator.against_popularity(als.Factors.load(spark, chosen), cfg.seed)))
    with job_step(spark, f"train_als: {point} fitted on every interaction"):
        every = als.ratings(
            spark.read.parquet(join(run_dir, "interactions", "data")), cfg.als.weighting, cfg.als.eps
        ).cache()
        _train_point(spark, cfg, every, point, staging)
        every.unpersist()
    return json.loads(fs.read_text(uri))
