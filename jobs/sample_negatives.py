"""Stage 3: labelled training examples (every positive + k sampled negatives) for the neural models,
under <paths.run_dir>/negatives/data/epoch=<e>/shard=<s>/.

    python jobs/sample_negatives.py --set paths.run_dir=runs/local --set negatives.k=4
"""
from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.etl.stages import run_negatives
from mpdrec.spark import build_spark


def sample(args: argparse.Namespace, cfg: Config) -> None:
    spark = build_spark(cfg.spark, "mpdrec-sample-negatives")
    m = run_negatives(spark, cfg, force=args.force)
    print(f"negatives: {m['positives']:,} positives, {m['negatives_per_epoch']:,} negatives per epoch set, "
          f"{m['epochs']} epoch sets x {m['shards']} shards ({m['shard_rows']['min']:,}..{m['shard_rows']['max']:,} rows)")


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], sample))
