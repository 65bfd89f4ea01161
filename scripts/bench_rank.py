#!/usr/bin/env python
"""Benchmark the final ranking end to end on the validation challenge; prints JSON.

Builds (or reuses, since every stage is skipped when up to date) a synthetic MPD of `--slices`
slices with `--per-category` validation playlists per category, its interactions and ALS factors,
and with `--ncf-model` an NCF model of this run (trained with `jobs/train_ncf.py`, one rank). Then it
times the rank stage alone, forced: the blend-training challenge's lists, candidates and features
and the blend's fit, then for the validation challenge every source's lists, the single-source
submissions, the candidates and their features (with the NCF scores) and the final submission, each
written and validated. The report's metrics (on every validation playlist) come along.

    python scripts/bench_rank.py --workdir /tmp/bench_rank                         # 100 slices, 10,000 playlists
    python scripts/bench_rank.py --workdir /tmp/bench_rank --ncf-model gmf --ncf-epochs 2
    python scripts/bench_rank.py --workdir /tmp/bench_rank20 --slices 20 --per-category 100
    python scripts/bench_rank.py --workdir /tmp/bench_rank --set rank.blend.trees=20   # the rank stage's keys
    python scripts/bench_rank.py --workdir /tmp/bench_rank --ncf-model gmf --reuse     # rank code changed only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 300.0


def _job(name: str, sets: list[str]) -> None:
    """A job as a user runs it (its own process and SparkSession); output discarded."""
    flags = [a for s in sets for a in ("--set", s)]
    subprocess.run(
        [sys.executable, str(ROOT / "jobs" / f"{name}.py"), *flags],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _reference_seconds(spark: SparkSession) -> float:
    """Seconds of a fixed Spark job made of the rank stage's kinds of work (a shuffle by pid, an
    aggregation, rows through Arrow to pandas). Timed right after the stage (so that it pays no JVM
    warm-up and the stage pays its own, as a user's job does), it says how fast this shared machine
    was during the run: two runs' rank_seconds over it compare, where the seconds alone vary from one
    hour to the next (docs/benchmarks.md)."""
    from pyspark.sql import functions as F

    started = time.perf_counter()
    (
        spark.range(0, 6_000_000, numPartitions=8)
        .select((F.col("id") % 10_000).alias("pid"), F.xxhash64("id").alias("h"))
        .repartition("pid")
        .groupBy("pid")
        .agg(F.max("h").alias("h"), F.count("*").alias("n"))
        .toPandas()
    )
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="kept between runs: stages are reused")
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--per-category", type=int, default=1000)
    ap.add_argument(
        "--train-per-category",
        type=int,
        default=None,
        help="blend-training challenge per category (default: validation.train_per_category's rule)",
    )
    ap.add_argument("--ncf-model", default="", help="gmf | mlp | neumf | nncf: an NCF score feature (trained here)")
    ap.add_argument("--ncf-epochs", type=int, default=2)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="rank the run directory's stages as they are, not rebuilt: any change to lib/mpdrec is in "
        "every stage's fingerprint, and rebuilding 100 slices takes longer than ranking them",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="a config key for the rank stage, e.g. --set rank.cooc_neighbours=100 (repeatable)",
    )
    args = ap.parse_args()

    from mpdrec.cli import setup_logging
    from mpdrec.config import SparkConfig, load_config
    from mpdrec.evaluation import evaluate
    from mpdrec.lists.assemble import FINAL, submissions
    from mpdrec.rank.stage import run_rank
    from mpdrec.spark import build_spark

    setup_logging("INFO")  # each step's seconds on stderr as the stage goes (minutes at 100 slices); JSON on stdout
    mpd, run_dir = args.workdir / f"mpd{args.slices}", args.workdir / "run"
    sets = [
        f"synth.num_slices={args.slices}",
        f"synth.out_dir={mpd}",
        f"paths.mpd={mpd}",
        f"paths.run_dir={run_dir}",
        "paths.challenge=",
        f"validation.per_category={args.per_category}",
        *([f"validation.train_per_category={args.train_per_category}"] if args.train_per_category else []),
        f"rank.ncf_model={args.ncf_model}",
        f"ncf.model={args.ncf_model or 'gmf'}",
        f"ncf.epochs={args.ncf_epochs}",
        "ncf.patience=0",
    ]
    started = time.perf_counter()
    for job in (
        ()
        if args.reuse
        else (
            "synth_mpd",
            "ingest_mpd",
            "build_interactions",
            "train_als",
            *(("sample_negatives", "train_ncf") if args.ncf_model else ()),
        )
    ):
        _job(job, sets)
    prepared = time.perf_counter() - started
    cfg = load_config(ROOT / "conf", "local", [], [*sets, *args.overrides])
    spark = build_spark(
        SparkConfig(
            master=f"local[{args.cores}]",
            conf={
                **cfg.spark.conf,
                "spark.driver.memory": "10g",
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
            },
        ),
        "bench-rank",
    )
    t0 = time.perf_counter()
    manifest = run_rank(spark, cfg, force=True)
    rank_seconds = time.perf_counter() - t0
    reference = [_reference_seconds(spark) for _ in range(2)]
    report = evaluate(spark, str(run_dir), submissions(cfg.rank), FINAL, cfg.seed)
    spark.stop()
    print(
        json.dumps(
            {
                "benchmark": "rank",
                "cores": args.cores,
                "slices": args.slices,
                "validation_playlists": report["validation"]["playlists"],
                "scored_playlists": report["scored_playlists"],
                "ncf_model": args.ncf_model or None,
                "rank_seconds": round(rank_seconds, 1),
                "target_seconds": TARGET_SECONDS,
                "share_of_target": round(rank_seconds / TARGET_SECONDS, 3),
                "reference_seconds": [round(r, 2) for r in reference],
                "rank_per_reference": round(rank_seconds / (sum(reference) / len(reference)), 1),
                "blend_training_steps": manifest["blend_training"]["seconds"],
                "steps": manifest["submission"]["seconds"],
                "candidates": manifest["submission"]["candidates"],
                "blend": {k: v for k, v in manifest["blend"].items() if k != "feature_importances"},
                "metrics": {m: {k: round(v, 4) for k, v in r["overall"].items()} for m, r in report["models"].items()},
                "prepare_seconds": round(prepared, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
