"""Stage 3: the neural models' training positives, every playlist whole in one of
<paths.run_dir>/negatives/data/shard=<s>/ (jobs/train_ncf.py draws k fresh negatives per positive
every epoch), and the leave-one-out set in <paths.run_dir>/negatives/eval/.

    python jobs/sample_negatives.py --set paths.run_dir=runs/local --set negatives.eval_playlists=5000
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.etl.stages import negatives_upstream, run_negatives
from mpdrec.spark import build_spark
from mpdrec.upstream import check_local_upstream


def sample(args: argparse.Namespace, cfg: Config) -> None:
    check_local_upstream(cfg, negatives_upstream(cfg))
    spark = build_spark(cfg.spark, "mpdrec-sample-negatives")
    m = run_negatives(spark, cfg, force=args.force)
    print(
        f"negatives: {m['positives']:,} training positives in {m['shards']} shards "
        f"({m['shard_rows']['min']:,}..{m['shard_rows']['max']:,} rows), "
        f"{m['eval_playlists']:,} leave-one-out playlists"
    )


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], sample))
