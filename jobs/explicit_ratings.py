"""The explicit-ratings study (Book-Crossing) over <paths.run_dir>/interactions: the seeded split
(<paths.run_dir>/explicit_split), then every model on every target, scored on validation and test, with
report.md, report.json and figures in <paths.run_dir>/explicit.

    python jobs/ingest_table.py --config conf/book_crossing.yaml
    python jobs/explicit_ratings.py --config conf/book_crossing.yaml
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.explicit.study import run_explicit, run_explicit_split
from mpdrec.spark import build_spark
from mpdrec.upstream import TABLE_INTERACTIONS, check_local_upstream


def study(args: argparse.Namespace, cfg: Config) -> None:
    check_local_upstream(cfg, [TABLE_INTERACTIONS])
    spark = build_spark(cfg.spark, "mpdrec-explicit-ratings")
    split = run_explicit_split(spark, cfg, force=args.force)
    print("explicit split: " + ", ".join(f"{k}={v:,}" for k, v in split["tables"].items()))
    m = run_explicit(spark, cfg, force=args.force)
    print(f"{'model':<12} {'target':<24} {'loss':<13} {'val F1':>7} {'test F1':>7} {'test RMSE':>9}")
    for r in m["results"]:
        print(
            f"{r['model']:<12} {r['target']['name']:<24} {r.get('loss') or '':<13} {r['validation']['f1']:>7.4f} "
            f"{r['test']['f1']:>7.4f} {r['test']['rmse']:>9.4f}"
        )
    print(
        f"always recommend: test F1 {m['always_recommend_f1']['test']:.4f}; "
        f"report in {cfg.paths.run_dir}/explicit/report.md"
    )


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], study))
