#!/usr/bin/env python
"""Benchmark implicit ALS: Spark against the `implicit` library, blocked top-N against Spark's
recommendForUserSubset, ALS time per iteration as the data grows; prints JSON.

- peer: on the same interactions and hyper-parameters, Spark ML ALS and `implicit` (exact
  least squares, like Spark's), each scored on the validation challenge the way the ALS stage
  scores a grid point (official metrics + MPR), with seconds per iteration and their ratio.
  `implicit` takes confidence alpha * value, so it is given 1 + alpha * r' with alpha 1, which is
  Spark's c; regularisation cannot be matched (Spark multiplies regParam by each row's number of
  ratings), so `implicit` runs with regParam and with regParam x the mean ratings per row.
- scoring: wall time of the blocked top-N for --score-playlists playlists against every track, and
  of `ALSModel.recommendForUserSubset` on the same model and playlists, as a ratio.
- scale: ALS seconds per iteration at each of --slices (the marginal cost: a 1-iteration fit is
  subtracted from a --scale-iters one), and the blocked top-N of 10,000 playlists
  against every track at --score-slices (random factors of the configured rank with that scale's
  real track count; the top-N's pruning depends on how scores are spread, and random factors give
  every track block the same spread, so it cannot profit from an order of the tracks).

Data is made by the jobs under --workdir and reused by later runs (the stages are skippable).

    python scripts/bench_als.py --workdir /tmp/bench_als
    python scripts/bench_als.py --workdir /tmp/bench_als --sections peer,scoring --slices 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def prepare(work: Path, slices: int) -> Path:
    """Synthetic MPD at this scale, ingested and indexed by the jobs (skipped when up to date)."""
    run_dir, mpd = work / f"run{slices}", work / f"mpd{slices}"
    sets = [
        f"synth.num_slices={slices}",
        f"synth.out_dir={mpd}",
        f"paths.mpd={mpd}",
        "paths.challenge=",
        f"paths.run_dir={run_dir}",
    ]
    for job in ("synth_mpd", "ingest_mpd", "build_interactions"):
        subprocess.run(
            [sys.executable, str(ROOT / "jobs" / f"{job}.py"), *(a for s in sets for a in ("--set", s))],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return run_dir


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _config(run_dir: Path, args: argparse.Namespace) -> Any:
    from mpdrec.config import load_config

    return load_config(
        ROOT / "conf",
        "local",
        [],
        [
            f"paths.run_dir={run_dir}",
            f"als.rank={args.rank}",
            f"als.alpha={args.alpha}",
            f"als.reg_param={args.reg}",
            f"als.max_iter={args.iters}",
        ],
    )


def _spark_fit(cfg: Any, ratings: Any, max_iter: int) -> tuple[Any, float]:
    """ALSModel and seconds per iteration (factors materialised, as a real run does)."""
    from dataclasses import replace

    from mpdrec.models import als

    a = replace(cfg.als, max_iter=max_iter)
    model, seconds = _timed(lambda: als.estimator(a, a.rank, a.alpha, a.reg_param, cfg.seed).fit(ratings))
    _, more = _timed(lambda: (model.userFactors.count(), model.itemFactors.count()))
    return model, (seconds + more) / max_iter


def peer(spark: Any, run_dir: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from mpdrec.models import als
    from mpdrec.models.als_grid import _ChallengeEvaluator

    cfg = _config(run_dir, args)
    evaluator = _ChallengeEvaluator(spark, cfg, str(run_dir), str(work / "peer_staging"))
    ratings = als.ratings(evaluator.data.interactions, cfg.als.weighting, cfg.als.eps).cache()
    model, spark_per_iter = _spark_fit(cfg, ratings, cfg.als.max_iter)
    out: dict[str, Any] = {
        "spark": {"seconds_per_iteration": round(spark_per_iter, 3), **_rounded(evaluator.score(als.Factors.of(model)))}
    }
    r = ratings.toPandas()
    n_p, n_t = int(r.playlist_idx.max()) + 1, evaluator.data.num_tracks
    confidence = sp.csr_matrix(
        ((1 + cfg.als.alpha * r.rating).astype(np.float32), (r.playlist_idx, r.track_idx)), shape=(n_p, n_t)
    )
    mean_per_row = len(r) / r.playlist_idx.nunique()
    for name, reg in (
        ("implicit", cfg.als.reg_param),
        ("implicit_reg_x_mean_ratings", cfg.als.reg_param * mean_per_row),
    ):
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads inside would fight it
            m = AlternatingLeastSquares(
                factors=cfg.als.rank,
                regularization=reg,
                alpha=1.0,
                iterations=cfg.als.max_iter,
                use_cg=False,
                random_state=cfg.seed,
                num_threads=args.cores,
            )
            _, seconds = _timed(partial(m.fit, confidence, show_progress=False))
        # like Spark, only rows with ratings get factors: a title-only playlist then falls back to the
        # title model instead of ranking by a zero vector
        factors = als.Factors(
            spark.createDataFrame(
                [(int(i), m.user_factors[i].tolist()) for i in np.unique(r.playlist_idx)],
                "playlist_idx int, features array<float>",
            ),
            spark.createDataFrame(
                [(int(i), m.item_factors[i].tolist()) for i in np.unique(r.track_idx)],
                "track_idx int, features array<float>",
            ),
        )
        out[name] = {
            "regularization": round(reg, 4),
            "seconds_per_iteration": round(seconds / cfg.als.max_iter, 3),
            **_rounded(evaluator.score(factors)),
        }
    out["spark_seconds_per_iteration_over_implicit"] = round(
        spark_per_iter / out["implicit"]["seconds_per_iteration"], 1
    )
    out["params"] = {
        "rank": cfg.als.rank,
        "alpha": cfg.als.alpha,
        "reg_param": cfg.als.reg_param,
        "iterations": cfg.als.max_iter,
        "weighting": cfg.als.weighting,
        "ratings": len(r),
        "playlists": n_p,
        "tracks": n_t,
    }
    return out


def scoring(spark: Any, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """--score-playlists training playlists as queries (their own tracks excluded, as seeds are),
    since a validation challenge at this scale is only a few hundred playlists."""
    from pyspark.sql import functions as F

    from mpdrec.lists.inputs import RankingData
    from mpdrec.models import als
    from mpdrec.spark import one_row

    cfg = _config(run_dir, args)
    data = RankingData.load(spark, str(run_dir / "interactions"))
    model, _ = _spark_fit(cfg, als.ratings(data.interactions, cfg.als.weighting, cfg.als.eps), 2)
    factors = als.Factors.of(model)  # the factors' values do not change the scoring cost
    factors = als.Factors(factors.playlists.cache(), factors.tracks.cache())
    users = (
        factors.playlists.select("playlist_idx").orderBy(F.xxhash64("playlist_idx")).limit(args.score_playlists).cache()
    )
    seeds = (
        data.interactions.join(users, "playlist_idx")
        .groupBy("playlist_idx")
        .agg(F.collect_list("track_idx").alias("exclude"))
    )
    queries = (
        users.join(factors.playlists, "playlist_idx")
        .join(seeds, "playlist_idx")
        .select(F.col("playlist_idx").cast("long").alias("pid"), "features", "exclude")
        .cache()
    )
    n_queries, most_seeds = one_row(queries.agg(F.count("*"), F.max(F.size("exclude"))))
    noop = lambda df: df.write.format("noop").mode("overwrite").save()  # noqa: E731
    n = cfg.rank.als_top_n
    _, blocked = _timed(lambda: noop(als.top_n(queries, factors.tracks, n, cfg.rank.block_rows)))
    # Spark cannot exclude seeds: it needs n + the most seeds, and dropping them is not even timed
    _, spark_s = _timed(lambda: noop(model.recommendForUserSubset(users, n + most_seeds)))
    return {
        "playlists": n_queries,
        "tracks": factors.tracks.count(),
        "n": n,
        "most_seeds": most_seeds,
        "rank": cfg.als.rank,
        "blocked_seconds": round(blocked, 2),
        "recommend_for_user_subset_seconds": round(spark_s, 2),
        "speedup": round(spark_s / blocked, 1),
    }


def scale(spark: Any, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from pyspark.sql import functions as F

    from mpdrec.lists.inputs import RankingData
    from mpdrec.models import als

    out: dict[str, Any] = {"als_seconds_per_iteration": {}}
    for slices in args.slices:
        run_dir = prepare(work, slices)
        cfg = _config(run_dir, args)
        data = RankingData.load(spark, str(run_dir / "interactions"))
        ratings = als.ratings(data.interactions, cfg.als.weighting, cfg.als.eps).cache()
        count = ratings.count()
        # marginal cost: (time of n iterations - time of 1) / (n - 1), so that the fixed cost of a fit
        # (caching the ratings' blocks, materialising the factors) is not spread over the iterations
        _, one = _spark_fit(cfg, ratings, 1)
        _, per_iter = _spark_fit(cfg, ratings, args.scale_iters)
        out["als_seconds_per_iteration"][str(slices)] = {
            "ratings": count,
            "seconds": round((per_iter * args.scale_iters - one) / (args.scale_iters - 1), 2),
            "one_iteration_fit_seconds": round(one, 2),
        }
        ratings.unpersist()
    run_dir = prepare(work, args.score_slices)
    tracks = RankingData.load(spark, str(run_dir / "interactions")).num_tracks
    rng = np.random.default_rng(0)
    vec = lambda: F.array(*[F.randn(rng.integers(1 << 30) + i).cast("float") for i in range(args.rank)])  # noqa: E731
    items = spark.range(tracks).select(F.col("id").cast("int").alias("track_idx"), vec().alias("features")).cache()
    queries = (
        spark.range(args.score_playlists)
        .select(
            (F.col("id") + 1_000_000).alias("pid"),
            vec().alias("features"),
            F.transform(F.sequence(F.lit(0), F.lit(99)), lambda x: (x * 7 + F.col("id")).cast("int")).alias("exclude"),
        )
        .cache()
    )
    items.count(), queries.count()
    cfg = _config(run_dir, args)
    _, seconds = _timed(
        lambda: (
            als.top_n(queries, items, cfg.rank.als_top_n, cfg.rank.block_rows)
            .write.format("noop")
            .mode("overwrite")
            .save()
        )
    )
    out["top_n_at_scale"] = {
        "slices": args.score_slices,
        "playlists": args.score_playlists,
        "tracks": tracks,
        "rank": args.rank,
        "n": cfg.rank.als_top_n,
        "seeds_excluded_per_playlist": 100,
        "seconds": round(seconds, 1),
        "target_seconds": 120,
    }
    return out


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_als"))
    ap.add_argument("--sections", default="peer,scoring,scale")
    ap.add_argument("--peer-slices", type=int, default=20)
    ap.add_argument(
        "--slices",
        default="20,40,80",
        type=lambda s: [int(x) for x in s.split(",") if x],
        help='slices for ALS time per iteration ("" = none)',
    )
    ap.add_argument("--score-slices", type=int, default=100)
    ap.add_argument("--score-playlists", type=int, default=10_000)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--alpha", type=float, default=20.0)
    ap.add_argument("--reg", type=float, default=0.1)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--scale-iters", type=int, default=3)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    if args.scale_iters < 2:
        ap.error("--scale-iters must be at least 2 (a 1-iteration fit is the baseline)")

    from mpdrec.config import SparkConfig
    from mpdrec.spark import build_spark

    spark = build_spark(
        SparkConfig(
            master=f"local[{args.cores}]",
            conf={
                "spark.driver.memory": "10g",
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                "spark.sql.shuffle.partitions": str(4 * args.cores),
                "spark.driver.extraJavaOptions": "--add-modules=jdk.incubator.vector",
            },
        ),
        "bench-als",
    )  # as conf/local.yaml
    spark.sparkContext.setCheckpointDir(str(args.workdir / "checkpoints"))
    sections = args.sections.split(",")
    result: dict[str, Any] = {"benchmark": "als", "cores": args.cores}
    if "peer" in sections or "scoring" in sections:
        run_dir = prepare(args.workdir, args.peer_slices)
        if "peer" in sections:
            result["peer"] = peer(spark, run_dir, args, args.workdir)
            print(json.dumps(result["peer"]), file=sys.stderr, flush=True)
        if "scoring" in sections:
            result["scoring"] = scoring(spark, run_dir, args)
            print(json.dumps(result["scoring"]), file=sys.stderr, flush=True)
    if "scale" in sections:
        result["scale"] = scale(spark, args.workdir, args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
