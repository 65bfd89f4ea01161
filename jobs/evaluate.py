"""Stage 7: score every model's validation submission (R-precision, NDCG, clicks; overall and per
category) and write <paths.run_dir>/report.json, report.md and report_*.png. On a table run
(jobs/ingest_table.py) the report holds the ALS grid on the held-out users beside popularity and the
leave-one-out table instead.

    python jobs/evaluate.py --set paths.run_dir=runs/local
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyspark.sql import SparkSession

from mpdrec.cli import run_job
from mpdrec.config import NCF_MODELS, Config
from mpdrec.etl.table_index import is_table_run
from mpdrec.evaluation import SCORED, evaluate
from mpdrec.evaluation_table import evaluate_table
from mpdrec.io.fs import HadoopFS, LocalFS
from mpdrec.io.paths import is_local, to_uri
from mpdrec.lists.assemble import FINAL, blend_variants, submissions
from mpdrec.models.table_holdout import COMPARED
from mpdrec.spark import build_spark
from mpdrec.upstream import INTERACTIONS, check_local_upstream


def main(args: argparse.Namespace, cfg: Config) -> None:
    run_dir = to_uri(cfg.paths.run_dir)
    check_local_upstream(cfg, [INTERACTIONS])
    if is_local(run_dir) and not is_table_run(LocalFS(), run_dir):
        check_local_upstream(cfg, SCORED)
    spark = build_spark(cfg.spark, "mpdrec-evaluate")
    if is_table_run(HadoopFS(spark), run_dir):
        return table_report(cfg, spark)
    report = evaluate(
        spark,
        cfg.paths.run_dir,
        submissions(cfg.rank),
        FINAL,
        cfg.seed,
        cfg.as_dict(),
        tuple(blend_variants(cfg.rank)),
        ("als", "dae", *([cfg.rank.ncf_model] if cfg.rank.ncf_model else [])),
    )
    print(f"{'model':<18} {'R-prec':>8} {'NDCG':>8} {'clicks':>8}")
    for name, m in report["models"].items():
        o = m["overall"]
        print(f"{name:<18} {o['r_precision']:>8.4f} {o['ndcg']:>8.4f} {o['clicks']:>8.2f}")
    comparisons = [(c["best_source"], metric, c) for metric, c in report.get("final_vs_best", {}).items()]
    comparisons += [
        (v, metric, c) for v, diff in report.get("final_vs_variants", {}).items() for metric, c in diff.items()
    ]
    for other, metric, c in comparisons:
        print(
            f"final - {other} {metric}: {c['difference']:+.4f} "
            f"(95% interval {c['low']:+.4f} .. {c['high']:+.4f}, {c['playlists']} playlists)"
        )
    print_leave_one_out(report)
    print(f"report: {cfg.paths.run_dir}/report.md and report.json")


def table_report(cfg: Config, spark: SparkSession) -> None:
    report = evaluate_table(spark, cfg.paths.run_dir, cfg.as_dict(), ("als", *NCF_MODELS))
    if "als" in report:
        a, h = report["als"], report["als"]["holdout"]
        print(
            f"held-out users {h['users']:,}: als "
            + "  ".join(f"{k} {a['metrics'][k]:.4f}" for k in COMPARED)
            + "  popularity "
            + "  ".join(f"{k} {h['popularity'][k]:.4f}" for k in COMPARED)
        )
    print_leave_one_out(report)
    print(f"report: {cfg.paths.run_dir}/report.md and report.json")


def print_leave_one_out(report: dict[str, Any]) -> None:
    for name, m in report["leave_one_out"].items():
        print(f"leave-one-out {name:<10} hr@10 {m['hr@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}  auc {m['auc']:.4f}")


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], main))
