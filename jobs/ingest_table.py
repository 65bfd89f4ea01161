"""Stages 1-2 for any interaction table (CSV or Parquet, mapped by the `table` config): <paths.run_dir>/table
(rows + quarantine) and <paths.run_dir>/interactions (dense ids), which sample_negatives and train_ncf read.

    python jobs/ingest_table.py --config conf/book_crossing.yaml --set table.path=data/book_crossing/BX-Book-Ratings.csv
    spark-submit jobs/ingest_table.py --set table.path=gs://bucket/plays/ --set table.format=parquet --set paths.run_dir=gs://bucket/run
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.etl.table_index import run_table_index
from mpdrec.etl.table_source import resolve_table_files, run_table
from mpdrec.io.fs import LocalFS
from mpdrec.io.paths import is_local, to_uri
from mpdrec.spark import build_spark


def ingest(args: argparse.Namespace, cfg: Config) -> None:
    local = [s for s in cfg.table.path if is_local(to_uri(s))]
    if local or not cfg.table.path:
        resolve_table_files(LocalFS(), local)  # a missing local input fails before Spark starts
    spark = build_spark(cfg.spark, "mpdrec-ingest-table")
    table = run_table(spark, cfg, force=args.force)
    q = table["quarantine"]
    print(
        f"table {'up to date' if table.get('skipped') else 'read'}: {table['tables']['data']:,} rows kept, "
        f"{q['records']:,} quarantined {q['by_reason']}"
    )
    index = run_table_index(spark, cfg, force=args.force)
    print(
        "interactions: "
        + ", ".join(f"{k}={v:,}" for k, v in index["tables"].items())
        + f"; outputs in {cfg.paths.run_dir}/table and {cfg.paths.run_dir}/interactions"
    )


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], ingest))
