"""Stage 1 for any interaction table: CSV or Parquet rows of (user, item[, value][, time][, item
attributes]) into `<run_dir>/table/`, with the MPD ingest's rules for bad rows.

The config (`table`) maps the input's columns to the roles and says how to read a CSV (separator,
quote, charset, header), so a ratings export, a play-count log or a Parquet table on an object store
all go in unchanged. Every row is either kept or quarantined with its file, a reason and the raw
line: `malformed_line` (too few or too many fields), `missing_user`, `missing_item`, `bad_value`
(empty, not a number, infinite), `bad_time` (neither a number nor a timestamp). Above
`table.max_quarantine_share` nothing is published: the quarantine goes to `<run_dir>/table_rejected/`
and the stage fails naming the files and the first reasons. Spark reads the files in parallel tasks;
nothing passes through the driver but counts and each CSV file's header line (a file is read by its
own header: the same columns in another order are mapped by name).

Outputs: `data` (user, item strings; value, time doubles; the attribute columns; source) and
`quarantine` (source, reason, detail, raw).
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.config import Config, TableConfig
from mpdrec.errors import InputError
from mpdrec.etl.rejection import reject
from mpdrec.io.arrow_fs import resolve
from mpdrec.io.fs import FileInfo, FileStore, HadoopFS, input_files
from mpdrec.io.paths import basename, join, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.spark import job_step

log = logging.getLogger("mpdrec.table")
STAGE = "table"
CORRUPT = "_corrupt_line"
QUARANTINE_COLUMNS = ("source", "reason", "detail", "raw")


def resolve_table_files(fs: FileStore, specs: list[str]) -> list[FileInfo]:
    """Every data file named by `table.path` (files, globs, directories), sorted, each once."""
    return input_files(fs, "table.path", specs, "data files (CSV or Parquet)")


def _csv_reader(spark: SparkSession, t: TableConfig):  # noqa: ANN202 - a DataFrameReader
    return (
        spark.read.option("sep", t.csv.sep)
        .option("quote", t.csv.quote)
        .option("escape", t.csv.quote)
        .option("encoding", t.csv.encoding)
        .option("header", t.csv.header)
    )


def _header(uri: str, t: TableConfig) -> tuple[str, ...]:
    """A CSV file's column names, from its first line (read by the driver: a few KB per file)."""
    fs, path = resolve(uri)
    with fs.open_input_stream(path, compression="detect") as stream:  # .gz as Spark reads it
        head = stream.read(1 << 16)
    try:
        text = head.decode(t.csv.encoding, errors="replace")
    except LookupError:  # a Java charset name Python does not know
        text = head.decode("utf-8", errors="replace")
    line = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    if len(t.csv.sep) > 1:
        return tuple(line.split(t.csv.sep))
    return tuple(next(csv.reader([line], delimiter=t.csv.sep, quotechar=t.csv.quote), []))


def _layouts(t: TableConfig, files: list[str]) -> dict[tuple[str, ...], list[str]]:
    """The files grouped by their columns: each CSV file's own header (Spark would read every file
    with the first one's, mapping a file with the same columns in another order wrongly), or
    `csv.names`; every group checked against the mapping."""
    if t.format == "parquet" or not t.csv.header:
        return {tuple(t.csv.names) if t.format == "csv" else (): files}
    with ThreadPoolExecutor(max_workers=16) as pool:
        headers = list(pool.map(lambda f: _header(f, t), files))
    layouts: dict[tuple[str, ...], list[str]] = {}
    for f, header in zip(files, headers):
        layouts.setdefault(header, []).append(f)
    for header, group in layouts.items():
        _check_columns(t, group[0], list(header))
    return layouts


def _check_columns(t: TableConfig, file: str, found: list[str]) -> None:
    missing = [c for c in t.columns().values() if c not in found]
    if missing:
        raise InputError(
            f"table: {file} has no column {', '.join(map(repr, missing))} (its columns: "
            f"{', '.join(map(repr, found))}); map them with table.user, table.item, table.value, "
            f"table.time, table.attributes"
        )


def _read_layout(spark: SparkSession, t: TableConfig, found: list[str], files: list[str]) -> DataFrame:
    """Files of one layout: the mapped columns renamed to their roles, `source`, `raw`, `malformed`."""
    roles = t.columns()
    if t.format == "parquet":
        df = spark.read.parquet(*files)
        _check_columns(t, files[0], df.columns)
        raw = F.to_json(F.struct(*[F.col(f"`{c}`").cast("string").alias(c) for c in roles.values()]))
        malformed: Column = F.lit(False)
    else:
        schema = ", ".join(f"`{c}` string" for c in found) + f", {CORRUPT} string"
        df = (
            _csv_reader(spark, t)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .schema(schema)
            .csv(files)
        )
        fields = F.concat_ws(t.csv.sep, *[F.coalesce(F.col(f"`{c}`"), F.lit("")) for c in found])
        raw = F.coalesce(F.col(CORRUPT), fields)
        malformed = F.col(CORRUPT).isNotNull()

    def text(c: str) -> Column:  # an empty attribute is unknown: null, so it never wins an item's min
        trimmed = F.trim(F.col(f"`{c}`").cast("string"))
        return F.when(trimmed != "", trimmed) if c in t.attributes else trimmed

    return df.select(
        *[text(c).alias(role) for role, c in roles.items()],
        F.input_file_name().alias("source"),
        raw.alias("raw"),
        malformed.alias("malformed"),
    )


def read_table(spark: SparkSession, t: TableConfig, files: list[str]) -> DataFrame:
    """The raw rows as strings: the mapped columns renamed to their roles, `source` (the file), `raw`
    (the line as read) and `malformed` (the line had the wrong number of fields); each file read
    by its own header."""
    parts = [_read_layout(spark, t, list(header), group) for header, group in _layouts(t, files).items()]
    return reduce(DataFrame.unionByName, parts)


def _number(col: str) -> Column:
    """A double, or null for what is not a finite number (whatever spark.sql.ansi.enabled says)."""
    x = F.expr(f"try_cast(`{col}` as double)")
    return F.when(~F.isnan(x) & (F.abs(x) != float("inf")), x)


def validated(rows: DataFrame, t: TableConfig) -> DataFrame:
    """`rows` with typed value and time, and `reason` (null for a good row) and `detail`."""
    value = _number("value") if t.value else F.lit(1.0)
    time = (
        F.coalesce(_number("time"), F.expr("cast(try_to_timestamp(`time`) as double)"))
        if t.time
        else F.lit(None).cast("double")
    )
    checks = [
        (F.col("malformed"), "malformed_line", F.lit("wrong number of fields")),
        (F.coalesce(F.col("user"), F.lit("")) == "", "missing_user", F.lit("no user")),
        (F.coalesce(F.col("item"), F.lit("")) == "", "missing_item", F.lit("no item")),
    ]
    if t.value:
        checks.append(
            (
                value.isNull(),
                "bad_value",
                F.concat(F.lit(f"{t.value} '"), F.coalesce("value", F.lit("")), F.lit("' is not a number")),
            )
        )
    if t.time:
        checks.append(
            (
                time.isNull(),
                "bad_time",
                F.concat(
                    F.lit(f"{t.time} '"), F.coalesce("time", F.lit("")), F.lit("' is neither a number nor a timestamp")
                ),
            )
        )
    reason, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for bad, name, why in reversed(checks):  # the first failing check names the row
        reason, detail = F.when(bad, F.lit(name)).otherwise(reason), F.when(bad, why).otherwise(detail)
    # reason and detail read the raw strings, so they are added before value and time become numbers
    return (
        rows.withColumn("reason", reason)
        .withColumn("detail", detail)
        .withColumn("value", value)
        .withColumn("time", time)
    )


def ingest_table(
    spark: SparkSession, fs: FileStore, t: TableConfig, files: list[FileInfo], staging: str, run_dir: str
) -> dict[str, Any]:
    rows = validated(read_table(spark, t, [f.uri for f in files]), t).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with job_step(spark, f"ingest_table: read {len(files)} files"):
            by_reason: Counter[str] = Counter(
                dict(rows.where("reason is not null").groupBy("reason").count().collect())
            )
            rows.where("reason is not null").select(*QUARANTINE_COLUMNS).write.parquet(join(staging, "quarantine"))
            good = rows.where("reason is null").select("user", "item", "value", "time", *t.attributes, "source")
            good.write.parquet(join(staging, "data"))
    finally:
        rows.unpersist()
    bad = sum(by_reason.values())
    kept = spark.read.parquet(join(staging, "data")).count()
    total = kept + bad
    if total and bad / total > t.max_quarantine_share:
        by_file: dict[str, int] = dict(
            spark.read.parquet(join(staging, "quarantine")).groupBy("source").count().collect()
        )
        reject(
            spark,
            fs,
            run_dir,
            staging,
            stage=STAGE,
            counted=f"{bad} of {total} rows are bad",
            share=bad / total,
            key="table.max_quarantine_share",
            limit=t.max_quarantine_share,
            by_file=Counter(by_file).most_common(),
            order="raw",
            reason=lambda r: f"{basename(r['source'])}: {r['reason']}: {r['detail']} in {r['raw']!r}",
            fix="the input, the column mapping (table.*)",
        )
    if bad:
        log.warning("table: %d of %d rows quarantined: %s", bad, total, dict(by_reason))
    return {
        "inputs": {"files": [{"uri": f.uri, "bytes": f.size} for f in files]},
        "tables": {"data": kept, "quarantine": bad},
        "quarantine": {
            "records": bad,
            "share": bad / total if total else 0.0,
            "by_reason": dict(by_reason),
            "max_share": t.max_quarantine_share,
        },
    }


def run_table(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    """Read `table.path` into `<paths.run_dir>/table`; skipped when files, config and code are unchanged."""
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    files = resolve_table_files(fs, cfg.table.path)
    fp = fingerprint(files, cfg.section_digest("table"))
    return run_stage(
        fs, run_dir, STAGE, fp, lambda staging: ingest_table(spark, fs, cfg.table, files, staging, run_dir), force=force
    )
