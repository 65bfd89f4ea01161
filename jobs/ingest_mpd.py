"""Stage 1: flatten MPD slice files (+ challenge set) into Parquet under <paths.run_dir>/ingest.

spark-submit jobs/ingest_mpd.py --set paths.mpd=gs://bucket/mpd --set paths.run_dir=gs://bucket/run
python jobs/ingest_mpd.py --set paths.mpd=data/mpd --set paths.challenge=data/mpd/challenge_set.json
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.etl.ingest import check_local_inputs, run_ingest
from mpdrec.spark import build_spark


def ingest(args: argparse.Namespace, cfg: Config) -> None:
    check_local_inputs(cfg)
    spark = build_spark(cfg.spark, "mpdrec-ingest")
    manifest = run_ingest(spark, cfg, force=args.force)
    state = "up to date, skipped" if manifest.get("skipped") else f"done in {manifest['seconds_total']}s"
    print(f"ingest {state}: " + ", ".join(f"{t}={n:,}" for t, n in manifest["tables"].items()))
    print(f"quarantined records: {manifest['quarantine']['records']}; outputs in {cfg.paths.run_dir}/ingest")


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], ingest))
