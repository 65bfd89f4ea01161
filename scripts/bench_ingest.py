#!/usr/bin/env python
"""Benchmark the generator and the ingest; prints JSON.

For each scale (slices): the generator's MB/s; the parse floor, i.e. reading and `orjson.loads` of
the same files on one core; and the ingest's MB/s per core (wall time x cores of the local[N]
session). The headline is `ratio` = ingest MB/s per core / floor MB/s, measured in the same run
(target >= 0.3), and how the ingest time grows from the smallest to the largest scale.

    python scripts/bench_ingest.py                      # scales 10, 20, 40; headline at 20
    python scripts/bench_ingest.py --scales 20 --cores 2
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

import orjson

ROOT = Path(__file__).resolve().parents[1]


def parse_floor(files: list[Path]) -> float:
    """Seconds to read and parse every file with orjson on one core (best of two)."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for f in files:
            orjson.loads(f.read_bytes())
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="10,20,40", help="comma-separated numbers of slices")
    ap.add_argument("--headline", type=int, default=20, help="scale reported as the headline")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    scales = sorted(int(s) for s in args.scales.split(","))

    from mpdrec.config import SparkConfig, load_config
    from mpdrec.etl.ingest import run_ingest
    from mpdrec.spark import build_spark
    from mpdrec.synth.generate import generate

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    spark = build_spark(
        SparkConfig(
            master=f"local[{args.cores}]",
            conf={
                "spark.driver.memory": "4g",
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": str(4 * args.cores),
            },
        ),
        "bench-ingest",
    )

    def cfg(slices: int, run: str):
        return load_config(
            ROOT / "conf",
            "local",
            [],
            [
                f"synth.num_slices={slices}",
                f"synth.out_dir={work / f'mpd{slices}'}",
                f"synth.workers={args.cores}",
                f"paths.mpd={work / f'mpd{slices}'}",
                f"paths.run_dir={work / run}",
                "paths.challenge=",
            ],
        )

    # warm-up: JVM, Python workers and code paths, on a small input
    generate(cfg(2, "warm").synth)
    run_ingest(spark, cfg(2, "warm"), force=True)

    results = []
    for slices in scales:
        c = cfg(slices, f"run{slices}")
        t0 = time.perf_counter()
        generate(c.synth, force=True)
        synth_s = time.perf_counter() - t0
        files = sorted((work / f"mpd{slices}").glob("mpd.slice.*.json"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        floor_s = parse_floor(files)
        t0 = time.perf_counter()
        manifest = run_ingest(spark, c, force=True)
        ingest_s = time.perf_counter() - t0
        per_core = mb / (ingest_s * args.cores)
        floor = mb / floor_s
        results.append(
            {
                "slices": slices,
                "mb": round(mb, 1),
                "synth_seconds": round(synth_s, 2),
                "synth_mb_per_s": round(mb / synth_s, 1),
                "parse_floor_seconds_one_core": round(floor_s, 2),
                "parse_floor_mb_per_s": round(floor, 1),
                "ingest_seconds": round(ingest_s, 2),
                "ingest_seconds_by_step": manifest["seconds"],
                "ingest_mb_per_s_per_core": round(per_core, 1),
                "ratio": round(per_core / floor, 3),
                "rows": manifest["tables"],
            }
        )
        print(f"# {slices} slices: ingest {ingest_s:.1f}s, ratio {per_core / floor:.3f}", file=sys.stderr)

    head = next((r for r in results if r["slices"] == args.headline), results[len(results) // 2])
    small, large = results[0], results[-1]
    growth = (large["ingest_seconds"] / small["ingest_seconds"]) / (large["slices"] / small["slices"])
    core_s_per_slice = large["ingest_seconds"] * args.cores / large["slices"]
    report = {
        "benchmark": "ingest",
        "cores": args.cores,
        "headline": {
            "slices": head["slices"],
            "ratio": head["ratio"],
            "target_ratio": 0.3,
            "meets_target": head["ratio"] >= 0.3,
            "ingest_mb_per_s_per_core": head["ingest_mb_per_s_per_core"],
            "parse_floor_mb_per_s": head["parse_floor_mb_per_s"],
            "synth_mb_per_s": head["synth_mb_per_s"],
        },
        "scaling": {
            "from_slices": small["slices"],
            "to_slices": large["slices"],
            "time_growth_over_size_growth": round(growth, 3),
            "note": "1.0 is linear; below 1.0 fixed costs are still being amortised",
        },
        "estimates_1000_slices": {
            "this_machine_seconds": round(core_s_per_slice * 1000 / args.cores, 0),
            "cluster_16_workers_x_4_cores_seconds": round(core_s_per_slice * 1000 / 64, 0),
            "basis": f"{core_s_per_slice:.2f} core-seconds per slice at {large['slices']} slices; "
            "cluster figure ignores object-store latency",
        },
        "runs": results,
    }
    print(json.dumps(report, indent=2))
    spark.stop()
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
