"""ALS on the NCF paper's leave-one-out protocol, so that the neural models and ALS compare like for
like: the grid's chosen point is fitted again on the NCF models' training positives (the
interactions without the leave-one-out set's held-out tracks), and each held-out track is ranked by
the dot product of the factors among the same sampled negatives as NCF's (HR@10, NDCG@10, AUC).
Popularity, counted on the same positives, is scored beside it.

The stage (`<run_dir>/als_leave_one_out/`, a manifest only) runs after the ALS grid when the run
has a leave-one-out set (`jobs/sample_negatives.py`), and on its own fingerprint: a new set never
retrains the grid. Only the evaluated playlists' and candidate tracks' factors reach the driver (at
most eval_playlists x (1 + eval_negatives) vectors). A track without factors (none of its rows was
trained) scores 0, as a zero vector would.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.config import Config, stable_digest
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import MANIFEST, join, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.metrics.leave_one_out import metric_sums, summarize
from mpdrec.models import als
from mpdrec.models.als_progress import logged_iterations
from mpdrec.models.leave_one_out import LeaveOneOut, leave_one_out_files, leave_one_out_uri, read_leave_one_out
from mpdrec.spark import job_step
from mpdrec.upstream import upstream

log = logging.getLogger("mpdrec.als")
STAGE = "als_leave_one_out"


def _vectors(factors: DataFrame, key: str, ids: np.ndarray, rank: int) -> np.ndarray:
    """Factor rows of `ids` (in that order; zeros where a row has no factors)."""
    spark = factors.sparkSession
    wanted = spark.createDataFrame(pd.DataFrame({key: np.unique(ids).astype(np.int32)}))
    found = factors.join(F.broadcast(wanted), key).toPandas()
    table = np.zeros((int(ids.max()) + 1, rank), dtype=np.float32)
    if len(found):
        table[found[key].to_numpy()] = np.stack(list(found["features"].to_numpy()))
    return table[ids]


def score(ratings: DataFrame, loo: LeaveOneOut, cfg: Config, point: dict[str, Any]) -> dict[str, Any]:
    """Fit `point` on `ratings` without the held-out tracks; its and popularity's metrics."""
    spark = ratings.sparkSession
    held = spark.createDataFrame(
        pd.DataFrame(
            {"playlist_idx": loo.playlists.astype(np.int32), "track_idx": loo.candidates[:, 0].astype(np.int32)}
        )
    )
    train = ratings.join(F.broadcast(held), ["playlist_idx", "track_idx"], "left_anti").cache()
    with logged_iterations(spark, cfg.als.max_iter, f"als leave-one-out refit {point}"):
        model = als.estimator(cfg.als, point["rank"], point["alpha"], point["reg_param"], cfg.seed).fit(train)
    factors = als.Factors.of(model)
    users = _vectors(factors.playlists, "playlist_idx", loo.playlists, point["rank"])
    items = _vectors(factors.tracks, "track_idx", loo.candidates, point["rank"])
    counts = train.groupBy("track_idx").count().toPandas()
    train.unpersist()
    # as long as the higher of the trained and the candidate track ids (a training track can be
    # above every candidate: at 100 slices the least popular ones were)
    popularity = np.bincount(
        counts["track_idx"].to_numpy(),
        weights=counts["count"].to_numpy(np.float64),
        minlength=int(loo.candidates.max()) + 1,
    )
    return {
        "metrics": summarize(metric_sums(np.einsum("pf,pcf->pc", users, items))),
        "popularity": summarize(metric_sums(popularity[loo.candidates])),
        "point": point,
        "playlists": int(len(loo.playlists)),
        "negatives": int(loo.candidates.shape[1] - 1),
    }


def run_als_leave_one_out(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any] | None:
    """The stage, when `als.leave_one_out` is on and the run has a leave-one-out set; else None."""
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    uri = leave_one_out_uri(cfg)
    files = leave_one_out_files(uri)
    if not cfg.als.leave_one_out or not files:
        log.info(
            "als leave-one-out: %s",
            "off (als.leave_one_out)"
            if not cfg.als.leave_one_out
            else f"no leave-one-out set at {uri} (jobs/sample_negatives.py writes one), skipped",
        )
        return None
    inputs = [
        upstream(fs, run_dir, s, j)
        for s, j in (("interactions", "jobs/build_interactions.py"), ("als", "jobs/train_als.py"))
    ]
    fp = fingerprint(inputs + files, stable_digest({"seed": cfg.seed, "als": cfg.als.__dict__}))

    def build(staging: str) -> dict[str, Any]:
        point = json.loads(fs.read_text(join(run_dir, "als", MANIFEST)))["best"]
        if cfg.als.checkpoint_interval:
            spark.sparkContext.setCheckpointDir(join(staging, "_checkpoints"))
        with job_step(spark, f"train_als: leave-one-out at {point}"):
            ratings = als.ratings(
                spark.read.parquet(join(run_dir, "interactions", "data")), cfg.als.weighting, cfg.als.eps
            )
            body = score(ratings, read_leave_one_out(uri), cfg, point)
        fs.delete(join(staging, "_checkpoints"))
        return body

    return run_stage(fs, run_dir, STAGE, fp, build, force=force)
