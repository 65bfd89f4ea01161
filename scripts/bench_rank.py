#!/usr/bin/env python
"""Benchmark the indexing and ranking stages at several scales; prints JSON.

For each scale (slices): wall seconds of build_interactions (validation challenge + ids +
interactions), of training ALS (the configured grid), of ranking the validation challenge with every
model (validated submissions), and of scoring them; plus the metrics, so growth with scale and
quality show side by side.

    python scripts/bench_rank.py                   # 20 and 80 slices
    python scripts/bench_rank.py --scales 20,40
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="20,80")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from mpdrec.config import SparkConfig, load_config
    from mpdrec.etl.ingest import run_ingest
    from mpdrec.etl.stages import run_interactions, run_validation
    from mpdrec.evaluation import evaluate
    from mpdrec.models.als_grid import run_als
    from mpdrec.rank.stage import run_rank
    from mpdrec.spark import build_spark
    from mpdrec.synth.generate import generate

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_rank_"))
    spark = build_spark(SparkConfig(master=f"local[{args.cores}]", conf={
        "spark.driver.memory": "8g", "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(4 * args.cores)}), "bench-rank")
    runs = []
    for slices in sorted(int(s) for s in args.scales.split(",")):
        mpd, run_dir = work / f"mpd{slices}", work / f"run{slices}"
        cfg = load_config(ROOT / "conf", "local", [], [
            f"synth.num_slices={slices}", f"synth.out_dir={mpd}", f"paths.mpd={mpd}",
            f"paths.run_dir={run_dir}", "paths.challenge="])
        generate(cfg.synth)
        run_ingest(spark, cfg)
        timings = {}
        t0 = time.perf_counter()
        validation = run_validation(spark, cfg, force=True)
        interactions = run_interactions(spark, cfg, force=True)
        timings["build_interactions"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_als(spark, cfg, force=True)
        timings["train_als"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_rank(spark, cfg, force=True)
        timings["rank_all_models"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = evaluate(spark, str(run_dir), cfg.rank.models)
        timings["score"] = time.perf_counter() - t0
        runs.append({
            "slices": slices,
            "validation_playlists": validation["playlists"],
            "interactions": interactions["tables"]["data"],
            "seconds": {k: round(v, 1) for k, v in timings.items()},
            "metrics": {m: {k: round(v, 4) for k, v in r["overall"].items()} for m, r in report["models"].items()},
        })
        print(f"# {slices} slices: {runs[-1]['seconds']}", file=sys.stderr)
    print(json.dumps({"benchmark": "rank", "cores": args.cores, "runs": runs}, indent=2))
    spark.stop()
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
