#!/usr/bin/env python
"""Benchmark the main job's quality on real and synthetic playlists, beside `implicit` ALS; prints JSON.

For each data set it runs the main job's stages as `scripts/run_local.sh` does (ingest, the two
held-out challenges and the interactions, the negatives, ALS, the NCF model of `rank.ncf_model`
trained under `horovodrun -np 2` (none with `--set rank.ncf_model=null`), the playlist autoencoder
under `horovodrun -np 2` when `dae` is in rank.models, the rank stage, evaluate),
then trains the `implicit` library's
ALS (a `dev` extra: the single-machine reference a user would try first) on the very same training
interactions: a small grid (factors x alpha x regularisation, 15 iterations) whose point is chosen on
the blend-training challenge, seeds filtered, popularity filling the title-only playlists. Every
figure is scored with the organisers' metrics on all of the validation challenge, which nothing was
fitted or tuned on; intervals are paired bootstraps over its playlists.

Data sets: `real` is `../shared/real-sample/data` (3,774 real MPD playlists; read in place, never
copied), `synthetic` the generator's MPD at `--slices`. Targets (issue 20): final >= 1.10x the better
of `implicit` and the best single source on R-precision and NDCG on the real sample, and >= the best
single source on both with the synthetic data; the NCF model's leave-one-out HR@10 >= popularity's
+ 0.08 on the real sample. Printed beside them: ALS on the same leave-one-out candidates, and final
minus final_without_ncf (what the NCF score adds to the blend). Issue 34's, with `dae` among the
sources: the autoencoder's leave-one-out HR@10 above ALS's, final minus final_without_dae at
least +0.005 on both metrics with its interval above 0 on the real sample, and the autoencoder above
the title source on the title-only playlists (printed with its interval).

    python scripts/bench_quality.py --workdir /tmp/bench_quality                       # real and synthetic
    python scripts/bench_quality.py --workdir /tmp/bq --data real --set rank.blend.method=gbt
    python scripts/bench_quality.py --workdir /tmp/bq --data real --set rank.ncf_model=null   # no NCF
    python scripts/bench_quality.py --workdir /tmp/bq_dae --baseline-workdir /tmp/bq \
        --set 'rank.models=[popularity,title,artist,cooc,als,dae]'       # with the autoencoder, against the default
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLE = ROOT.parent / "shared" / "real-sample" / "data"
IMPLICIT_GRID: dict[str, list[float]] = {
    "factors": [64, 128],
    "alpha": [5.0, 20.0, 80.0],
    "regularization": [0.01, 0.1],
}
IMPLICIT_ITERATIONS = 15
METRICS = ("r_precision", "ndcg", "clicks")


def _job(job: str, sets: list[str], launcher: list[str] | None = None) -> None:
    args = [*(launcher or [sys.executable]), str(ROOT / "jobs" / f"{job}.py"), *(a for s in sets for a in ("--set", s))]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise SystemExit(f"{job} failed (exit {done.returncode})")


def run_main_job(mpd: Path, run_dir: Path, sets: list[str], ncf_model: str | None, dae: bool) -> dict[str, float]:
    """The main job's stages, as scripts/run_local.sh runs them (skipped where up to date); seconds per
    stage. `ncf_model`: rank.ncf_model (= ncf.model in `sets`), trained on two Horovod ranks (None: no NCF
    stage); `dae`: the autoencoder too, on two Horovod ranks."""
    sets = [f"paths.mpd={mpd}", "paths.challenge=", f"paths.run_dir={run_dir}", *sets]
    horovodrun = [
        str(Path(sys.executable).parent / "horovodrun"),
        "-np",
        "2",
        "-H",
        "localhost:2",
        "--gloo",
        sys.executable,
    ]
    stages: list[tuple[str, list[str], list[str] | None]] = [
        ("ingest_mpd", sets, None),
        ("build_interactions", sets, None),
        ("sample_negatives", sets, None),
        ("train_als", sets, None),
    ]
    if ncf_model:
        stages.append(("train_ncf", sets, horovodrun))
    if dae:
        stages.append(("train_dae", sets, horovodrun))
    seconds: dict[str, float] = {}
    for job, job_sets, launcher in [*stages, ("rank_candidates", sets, None), ("evaluate", sets, None)]:
        started = time.perf_counter()
        _job(job, job_sets, launcher)
        seconds[job] = round(time.perf_counter() - started, 1)
    return seconds


def implicit_baseline(spark: Any, cfg: Any, run_dir: Path, work: Path) -> tuple[dict[str, Any], Any]:
    """`implicit` ALS over the run's interactions: each grid point scored on the blend-training
    challenge, the best one on the validation challenge; (summary, its per-playlist scores)."""
    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from mpdrec.etl.slice_tables import process_file
    from mpdrec.lists.assemble import SUBMISSION_SIZE, assemble
    from mpdrec.lists.inputs import Queries, RankingData
    from mpdrec.lists.scoring import ValidationTruth, challenge_dir
    from mpdrec.models import popularity
    from mpdrec.spark import one_row

    data = RankingData.load(spark, str(run_dir / "interactions"))
    pairs = data.interactions.select("playlist_idx", "track_idx").toPandas()
    n_playlists = int(one_row(data.playlist_ids.agg({"playlist_idx": "max"}))[0]) + 1
    user_items = sp.csr_matrix(
        (np.ones(len(pairs), dtype=np.float32), (pairs.playlist_idx, pairs.track_idx)),
        shape=(n_playlists, data.num_tracks),
    )

    def prepare(challenge: str) -> tuple[Any, Any, Any, Any]:
        """The challenge's truth, queries, the query rows implicit can rank (with seeds), popularity."""
        tables = str(work / f"{challenge}_queries")
        process_file(str(Path(challenge_dir(str(run_dir), challenge)) / "challenge_set.json"), "challenge", tables)
        queries = Queries.load(spark, data, tables)
        rows = queries.playlists.select("pid", "playlist_idx").where("playlist_idx is not null").toPandas()
        rows = rows[np.diff(user_items.indptr)[rows.playlist_idx.to_numpy()] > 0]  # title-only: popularity
        return (
            ValidationTruth.load(spark, str(run_dir), challenge),
            queries,
            rows,
            popularity.recommend(data, queries, SUBMISSION_SIZE).cache(),
        )

    def ranking(model: Any, queries: Any, rows: Any, fill: Any) -> Any:
        ids, scores = model.recommend(
            rows.playlist_idx.to_numpy(),
            user_items[rows.playlist_idx.to_numpy()],
            N=SUBMISSION_SIZE,
            filter_already_liked_items=True,
        )
        recs = spark.createDataFrame(
            [
                (int(pid), int(t), float(s))
                for pid, ts, ss in zip(rows.pid, ids, scores)
                for t, s in zip(ts, ss)
                if t >= 0
            ],
            "pid long, track_idx int, score double",
        )
        return assemble([("implicit", recs), ("popularity", fill)], queries)

    train = prepare("train")
    grid = []
    for factors, alpha, reg in itertools.product(*IMPLICIT_GRID.values()):
        with threadpool_limits(1, "blas"):  # implicit parallelises itself
            model = AlternatingLeastSquares(
                factors=factors,
                alpha=alpha,
                regularization=reg,
                iterations=IMPLICIT_ITERATIONS,
                random_state=cfg.seed,
                num_threads=os.cpu_count() or 2,
            )
            model.fit(user_items, show_progress=False)
        scores = train[0].score_ranking(ranking(model, *train[1:]))["overall"]
        grid.append(
            {
                "factors": factors,
                "alpha": alpha,
                "regularization": reg,
                "model": model,
                **{k: round(scores[k], 4) for k in METRICS},
            }
        )
    best = max(grid, key=lambda g: g["ndcg"])
    validation = prepare("validation")
    per_playlist = validation[0].ranking_scores(ranking(best["model"], *validation[1:]))
    summary = {
        "grid_on_train_challenge": [{k: v for k, v in g.items() if k != "model"} for g in grid],
        "best": {k: best[k] for k in IMPLICIT_GRID},
        "iterations": IMPLICIT_ITERATIONS,
        "overall": {k: round(float(per_playlist[k].mean()), 4) for k in METRICS},
    }
    return summary, per_playlist


def _title_only_difference(spark: Any, truth: Any, run_dir: Path, seed: int) -> dict[str, Any]:
    """The autoencoder's submission minus the title source's on the title-only playlists (category 1)
    of the validation challenge, per metric, with a paired bootstrap interval."""
    from mpdrec.metrics.bootstrap import paired_difference

    title_only = set(truth.categories.loc[truth.categories["category"] == 1, "pid"])
    scores = {
        m: truth.submission_scores(spark, str(run_dir / "rank" / m / "submission.csv")).set_index("pid")
        for m in ("dae", "title")
    }
    pids = sorted(title_only & set(scores["dae"].index) & set(scores["title"].index))
    return {
        metric: paired_difference(
            scores["dae"].loc[pids, metric].to_numpy(), scores["title"].loc[pids, metric].to_numpy(), seed
        )
        for metric in ("r_precision", "ndcg")
    }


def measure(name: str, mpd: Path, work: Path, sets: list[str], baseline: Path | None = None) -> dict[str, Any]:
    from mpdrec.config import SparkConfig, load_config
    from mpdrec.lists.assemble import FINAL, blend_variants
    from mpdrec.lists.scoring import ValidationTruth
    from mpdrec.metrics.bootstrap import paired_difference
    from mpdrec.spark import build_spark

    run_dir = work / name / "run"
    cfg = load_config(ROOT / "conf", "local", [], [f"paths.run_dir={run_dir}", *sets])
    seconds = run_main_job(mpd, run_dir, sets, cfg.rank.ncf_model, "dae" in cfg.rank.models)
    report = json.loads((run_dir / "report.json").read_text())
    spark = build_spark(
        SparkConfig(master="local[2]", conf={"spark.driver.memory": "6g", "spark.ui.enabled": "false"}), "bench-quality"
    )
    started = time.perf_counter()
    implicit, implicit_scores = implicit_baseline(spark, cfg, run_dir, work / name)
    seconds["implicit"] = round(time.perf_counter() - started, 1)
    truth = ValidationTruth.load(spark, str(run_dir))
    final = truth.submission_scores(spark, str(run_dir / "rank" / FINAL / "submission.csv"))
    title_only = _title_only_difference(spark, truth, run_dir, cfg.seed) if "dae" in cfg.rank.models else None
    other = (
        truth.submission_scores(spark, str(baseline / name / "run" / "rank" / FINAL / "submission.csv"))
        if baseline
        else None
    )
    spark.stop()
    models = {m: {k: round(v["overall"][k], 4) for k in METRICS} for m, v in report["models"].items()}
    sources = {m: v for m, v in models.items() if m != FINAL and m not in blend_variants(cfg.rank)}
    out: dict[str, Any] = {
        "validation_playlists": report["scored_playlists"],
        "train_playlists": report["validation"]["train_playlists"],
        "models": models,
        "implicit": implicit,
        "final_vs_best_source": report.get("final_vs_best"),
        "final_vs_variants": report.get("final_vs_variants"),
        "leave_one_out": report.get("leave_one_out"),
        "blend": report["rank"]["blend"],
        "candidate_recall": report["rank"]["candidates"]["recall"],
        "seconds": seconds,
    }
    for metric in ("r_precision", "ndcg"):
        best = max(sources.values(), key=lambda m: m[metric])[metric]
        reference = max(best, implicit["overall"][metric])
        out[f"final_over_best_{metric}"] = round(models[FINAL][metric] / reference, 4)
        out[f"final_minus_implicit_{metric}"] = paired_difference(
            final[metric].to_numpy(), implicit_scores[metric].to_numpy(), cfg.seed
        )
    loo = report.get("leave_one_out") or {}
    if cfg.rank.ncf_model in loo:
        out["ncf_minus_popularity_hr@10"] = round(loo[cfg.rank.ncf_model]["hr@10"] - loo["popularity"]["hr@10"], 4)
    if "dae" in loo and "als" in loo:
        out["dae_minus_als_hr@10"] = round(loo["dae"]["hr@10"] - loo["als"]["hr@10"], 4)
    if title_only is not None:
        out["dae_minus_title_on_title_only"] = title_only
    if other is not None:  # the same validation challenge (the same data and seed): paired by playlist
        mine, theirs = final.set_index("pid").sort_index(), other.set_index("pid").sort_index()
        if list(mine.index) != list(theirs.index):
            raise SystemExit(f"--baseline-workdir {baseline}: another validation challenge than this run's")
        out["final_minus_baseline_final"] = {
            m: paired_difference(mine[m].to_numpy(), theirs[m].to_numpy(), cfg.seed) for m in ("r_precision", "ndcg")
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="kept between runs: finished stages are reused")
    ap.add_argument("--data", choices=["real", "synthetic", "both"], default="both")
    ap.add_argument("--slices", type=int, default=20, help="synthetic MPD size (run_local.sh's default)")
    ap.add_argument(
        "--baseline-workdir",
        type=Path,
        help="another run of this bench on the same data (say, the default config): final minus its final, paired",
    )
    ap.add_argument("--real-per-category", type=int, default=50, help="validation playlists per category, real sample")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="a config key for every job, e.g. --set rank.blend.method=gbt (repeatable)",
    )
    args = ap.parse_args()
    results: dict[str, Any] = {"benchmark": "quality", "overrides": args.overrides}
    if args.data in ("real", "both"):
        if not REAL_SAMPLE.is_dir():
            raise SystemExit(f"{REAL_SAMPLE} is missing: the real sample lives in ../shared/real-sample")
        results["real"] = measure(
            "real",
            REAL_SAMPLE,
            args.workdir,
            [f"validation.per_category={args.real_per_category}", *args.overrides],
            args.baseline_workdir,
        )
    if args.data in ("synthetic", "both"):
        mpd = args.workdir / f"mpd{args.slices}"
        _job("synth_mpd", [f"synth.num_slices={args.slices}", f"synth.out_dir={mpd}"])
        results["synthetic"] = measure("synthetic", mpd, args.workdir, args.overrides, args.baseline_workdir)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
