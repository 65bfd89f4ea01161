"""Predict each MPD playlist's num_followers from its features over <paths.run_dir>/ingest: the mean,
linear regression, the lasso and gradient-boosted trees (Spark ML), their held-out error and
coefficients; into <paths.run_dir>/followers.

    python jobs/predict_followers.py --set paths.run_dir=runs/real
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.spark import build_spark
from mpdrec.studies.followers import run_followers
from mpdrec.upstream import INGEST, check_local_upstream


def study(args: argparse.Namespace, cfg: Config) -> None:
    check_local_upstream(cfg, [INGEST])
    spark = build_spark(cfg.spark, "mpdrec-predict-followers")
    m = run_followers(spark, cfg, force=args.force)
    print(f"{m['train']:,} training, {m['test']:,} held-out playlists")
    for name, r in m["results"].items():
        print(
            f"  {name:<7} RMSE {r['followers']['rmse']:9.3f}  MAE {r['followers']['mae']:8.3f}  "
            f"log-scale RMSE {r['log']['rmse']:.4f}  R^2 {r['log']['r2']:+.4f}"
        )
    print(f"report in {cfg.paths.run_dir}/followers/report.md")


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], study))
