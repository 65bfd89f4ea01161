"""The charts study (country x song streams) over <paths.run_dir>/interactions: IMF's grid and the five
networks scored by expected percentile ranking, and country arithmetic; report.md, report.json and a
figure in <paths.run_dir>/charts.

    python jobs/ingest_table.py --config conf/charts.yaml && python jobs/charts_study.py --config conf/charts.yaml \
        --set 'charts.arithmetic=["se * no - us"]'
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.charts.study import run_charts
from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.spark import build_spark
from mpdrec.upstream import TABLE_INTERACTIONS, check_local_upstream


def study(args: argparse.Namespace, cfg: Config) -> None:
    check_local_upstream(cfg, [TABLE_INTERACTIONS])
    spark = build_spark(cfg.spark, "mpdrec-charts-study")
    m = run_charts(spark, cfg, force=args.force)
    print(f"{m['countries']} countries x {m['songs']} songs; EPR (lower is better):")
    for r in m["models"]:
        print(f"  {r['model']:<40} train {r['epr_train']:.4f}  validation {r['epr_validation']:.4f}")
    for a in m["arithmetic"]:
        print(f"  {a['expression']}: " + "; ".join(s["title"] or s["song"] for s in a["songs"][:5]))
    print(f"report in {cfg.paths.run_dir}/charts/report.md")


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], study))
