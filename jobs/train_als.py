"""Stage 4: implicit ALS (Spark ML) over the grid in config, each point scored on the blend-training
challenge (a table run's: on held-out users, beside popularity); the best point's model and factors are
written to <paths.run_dir>/als/. With a leave-one-out set (jobs/sample_negatives.py), the best point is
also scored as NCF is (<paths.run_dir>/als_leave_one_out/).

    python jobs/train_als.py --set paths.run_dir=runs/local
    python jobs/train_als.py --set als.grid_rank=[32,64] --set als.grid_alpha=[5,20,40]
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.models.als_grid import run_als
from mpdrec.models.als_leave_one_out import run_als_leave_one_out
from mpdrec.models.table_holdout import COMPARED
from mpdrec.spark import build_spark
from mpdrec.upstream import INTERACTIONS, check_local_upstream


def train(args: argparse.Namespace, cfg: Config) -> None:
    check_local_upstream(cfg, [INTERACTIONS])  # a table run has no validation stage: run_als checks it then
    spark = build_spark(cfg.spark, "mpdrec-train-als")
    m = run_als(spark, cfg, force=args.force)
    print(f"{'rank':>5} {'alpha':>7} {'reg':>7} {'R-prec':>8} {'NDCG':>8} {'clicks':>7} {'MPR':>7} {'s/iter':>7}")
    for g in m["grid"]:
        p = g["point"]
        print(
            f"{p['rank']:>5} {p['alpha']:>7g} {p['reg_param']:>7g} {g['r_precision']:>8.4f} {g['ndcg']:>8.4f} "
            f"{g['clicks']:>7.2f} {g['mpr']:>7.4f} {g['seconds_per_iteration']:>7.2f}"
        )
    if "holdout" in m:
        h = m["holdout"]
        print(
            f"held-out users: {h['users']:,} ({h['hidden']:,} hidden items); popularity: "
            + "  ".join(f"{k} {h['popularity'][k]:.4f}" for k in COMPARED)
        )
        for metric, d in h["als_minus_popularity"].items():
            print(
                f"als - popularity {metric}: {d['difference']:+.4f} (95% interval {d['low']:+.4f} .. {d['high']:+.4f})"
            )
    state = "up to date" if m.get("skipped") else "trained"
    print(f"als: {state}; best by {m['select']}: {m['best']}; written to {cfg.paths.run_dir}/als")
    loo = run_als_leave_one_out(spark, cfg, force=args.force)
    if loo is not None:
        print(
            "als leave-one-out (NCF's protocol, same candidates): "
            + "  ".join(f"{k} {v:.4f}" for k, v in loo["metrics"].items())
            + f"  (popularity hr@10 {loo['popularity']['hr@10']:.4f})"
        )


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], train))
