"""Stage 2: the held-out validation and blend-training challenges, dense ids and the interactions table.

python jobs/build_interactions.py --set paths.run_dir=runs/local
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.etl.stages import run_interactions, run_validation
from mpdrec.spark import build_spark
from mpdrec.upstream import INGEST, check_local_upstream


def build(args: argparse.Namespace, cfg: Config) -> None:
    check_local_upstream(cfg, [INGEST])
    spark = build_spark(cfg.spark, "mpdrec-build-interactions")
    validation = run_validation(spark, cfg, force=args.force)
    interactions = run_interactions(spark, cfg, force=args.force)
    print(f"validation challenge: {validation['playlists']} playlists ({validation['by_category']} by category)")
    print(
        f"blend-training challenge: {validation['train']['playlists']} playlists "
        f"({validation['train']['by_category']} by category)"
    )
    print("interactions: " + ", ".join(f"{t}={n:,}" for t, n in interactions["tables"].items()))


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], build))
