"""What an ingest stage does when too much of its input is bad: it publishes nothing, sets the
staged quarantine aside in `<run_dir>/<stage>_rejected/quarantine` (where the user can read every bad
record), and fails with one message naming the files with most bad records and the first reasons.
The MPD ingest and the table ingest both end this way."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from pyspark.sql import Row, SparkSession

from mpdrec.errors import InputError
from mpdrec.io.fs import FileStore
from mpdrec.io.paths import basename, join


def reject(
    spark: SparkSession,
    fs: FileStore,
    run_dir: str,
    staging: str,
    *,
    stage: str,
    counted: str,
    share: float,
    key: str,
    limit: float,
    by_file: list[tuple[str, int]],
    order: str,
    reason: Callable[[Row], str],
    fix: str,
    lost: str = "",
) -> NoReturn:
    """Raise the InputError; `counted` says how many of what were bad (share `share` of the input,
    above config key `key`'s `limit`), `by_file` (source, bad records) the worst files first,
    `reason(row)` one quarantine row's reason (rows ordered by source, then `order`), `fix` what to
    change, `lost` the files that gave no record at all."""
    rejected = join(run_dir, f"{stage}_rejected")
    fs.delete(rejected)
    fs.rename(join(staging, "quarantine"), join(rejected, "quarantine"))
    first = spark.read.parquet(join(rejected, "quarantine")).orderBy("source", order).limit(5).collect()
    files = ", ".join(f"{basename(source)} ({n})" for source, n in by_file[:10])
    unreadable = f"Files that gave no record: {lost}. " if lost else ""
    raise InputError(
        f"{stage}: {counted} ({share:.4%}), above {key}={limit}. Files: {files}. {unreadable}First reasons: "
        + "; ".join(reason(r) for r in first)
        + f". All of them are in {join(rejected, 'quarantine')}; nothing was published. Fix {fix}, or allow it "
        f"with --set {key}=<share>."
    )
