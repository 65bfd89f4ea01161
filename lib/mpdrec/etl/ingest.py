"""Stage 1: MPD slice files (+ challenge set) -> Parquet tables, with a quarantine for bad records.

How it scales: the driver only lists files. Spark runs one task per group of files; the task reads
each file itself (pyarrow filesystems: local, gs://, s3://, hdfs://), parses it with `mpd_parse`,
and writes that file's Parquet (`slice_tables`). Memory per task is bounded by one slice and no
data passes through the driver. Spark then does the cross-file work: pids repeated across files
(the first occurrence by file and position is kept, the others are quarantined), and the `tracks`
catalogue merged from per-file track statistics.

If the quarantined share passes `ingest.max_quarantine_share`, nothing is published: the quarantine
goes to `<run_dir>/ingest_rejected/quarantine` and the job fails naming the files and first reasons.
A slice file that gives no record counts as all the playlists it should hold, and every such file
is named. The challenge set must be readable and its pids must not be MPD pids (its playlists
would merge with theirs): either fails the job before anything is published.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from mpdrec import schemas
from mpdrec.config import Config
from mpdrec.errors import InputError
from mpdrec.etl.rejection import reject
from mpdrec.etl.slice_tables import TRACK_META, TRACK_STATS, FileSummary, output_name, process_file, write_empty
from mpdrec.io.fs import FileInfo, FileStore, HadoopFS, LocalFS, input_files
from mpdrec.io.paths import basename, is_local, join, local_path, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.spark import job_step, one_row

log = logging.getLogger("mpdrec.ingest")
SLICE_PATTERN = "mpd.slice.*.json"
TABLES = ("playlists", "playlist_tracks", "tracks", "challenge_playlists", "challenge_tracks", "quarantine")
TASKS_PER_CORE = 4  # more, smaller tasks balance load; fewer amortise the per-task cost
FILES_PER_TASK = 4  # slice files per task when the cores seen at start are few (dynamic allocation)


def resolve_slice_files(fs: FileStore, specs: list[str]) -> list[FileInfo]:
    """Every slice file named by `paths.mpd` (directories, globs, files), sorted, each once. A
    directory may not hold compressed slices (mpd.slice.*.json.gz, ...), nor, on a local disk,
    slice names that are not files (a broken link, a directory): they would be left out unseen."""
    return input_files(fs, "paths.mpd", specs, f"MPD slice files ({SLICE_PATTERN})", SLICE_PATTERN, _check_slice_dir)


def _check_slice_dir(fs: FileStore, spec: str) -> None:
    uri = to_uri(spec)
    packed = fs.list_files(uri, SLICE_PATTERN + ".*")
    if packed:
        names = ", ".join(basename(f.uri) for f in packed[:5])
        raise InputError(
            f"config key 'paths.mpd': {spec} holds {len(packed)} compressed slice files ({names}"
            f"{', ...' if len(packed) > 5 else ''}): decompress them first"
        )
    if is_local(uri):
        d = local_path(uri)
        odd = sorted(n for n in os.listdir(d) if fnmatch.fnmatch(n, SLICE_PATTERN) and not (d / n).is_file())
        if odd:
            raise InputError(
                f"config key 'paths.mpd': in {spec}, {', '.join(odd)} "
                f"{'is not a file' if len(odd) == 1 else 'are not files'} "
                f"(a broken link or a directory): fix or remove {'it' if len(odd) == 1 else 'them'}"
            )


def resolve_challenge(fs: FileStore, spec: str | None) -> FileInfo | None:
    if spec is None:
        return None
    hits = fs.glob(to_uri(spec))
    if len(hits) != 1:
        raise InputError(f"config key 'paths.challenge': {spec} is not a file")
    return hits[0]


def check_local_inputs(cfg: Config) -> None:
    """Fail fast, before Spark starts, on local inputs that are missing (object stores: after)."""
    local_specs = [s for s in cfg.paths.mpd if is_local(to_uri(s))]
    if local_specs:
        resolve_slice_files(LocalFS(), local_specs)
    if cfg.paths.challenge and is_local(to_uri(cfg.paths.challenge)):
        resolve_challenge(LocalFS(), cfg.paths.challenge)


def _task_runner(out_dir: str) -> Callable[[Iterable[tuple[str, str]]], Iterator[dict[str, Any]]]:
    def run(items: Iterable[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        for source, kind in items:
            yield process_file(source, kind, out_dir).as_dict()

    return run


def _process_files(
    spark: SparkSession, items: list[tuple[str, str]], out_dir: str, files_per_task: int
) -> list[FileSummary]:
    # from the files as well as the cores: under dynamic allocation a job starts with about 2 cores
    # and grows, and 1,000 slice files in 8 tasks would stay 8 tasks however many executors come
    cores = spark.sparkContext.defaultParallelism
    tasks = (
        math.ceil(len(items) / files_per_task)
        if files_per_task
        else max(math.ceil(len(items) / FILES_PER_TASK), min(len(items), TASKS_PER_CORE * cores))
    )
    with job_step(spark, f"ingest: parse {len(items)} files in {tasks} tasks"):
        rows = spark.sparkContext.parallelize(items, tasks).mapPartitions(_task_runner(out_dir)).collect()
    return [FileSummary(**r) for r in rows]


def _pid_ranges_overlap(summaries: list[FileSummary]) -> bool:
    """Whether any two MPD files' pid ranges overlap; if not, no pid can repeat across files (the
    real MPD's slices hold disjoint ranges, so the Spark check below is then skipped, exactly)."""
    ranges = sorted(
        (s.pid_min, s.pid_max) for s in summaries if s.kind == "mpd" and s.pid_min is not None and s.pid_max is not None
    )
    return any(lo <= prev_hi for (_, prev_hi), (lo, _) in zip(ranges, ranges[1:]))


def _duplicates(spark: SparkSession, staging: str) -> DataFrame:
    """Playlists whose pid is also in an earlier file (by URI): to be dropped. Within one file the
    parser already keeps the first occurrence, so across files the first file wins."""
    pl = spark.read.parquet(join(staging, "playlists"))
    firsts = (
        pl.groupBy("pid")
        .agg(F.count("*").alias("n"), F.min("source").alias("first_source"))
        .where("n > 1")
        .select("pid", "first_source")
    )
    return pl.join(F.broadcast(firsts), "pid").where(F.col("source") != F.col("first_source"))


def _file_counts(summaries: list[FileSummary], dups_by_file: dict[str, int]) -> dict[str, dict[str, int]]:
    """records = kept + quarantined for every file that lost any, pids repeated across files included."""
    out = {}
    for s in summaries:
        lost = s.quarantined + dups_by_file.get(s.source, 0)
        if lost:
            out[s.source] = {"records": s.records, "kept": s.records - lost, "quarantined": lost}
    return out


def _lost_files(summaries: list[FileSummary]) -> str:
    """Every file that gave no record, with why: named in full, however many."""
    return ", ".join(
        f"{basename(s.source)} ({s.records:,} playlists: {s.problem})" for s in summaries if s.problem is not None
    )


def _check_challenge(spark: SparkSession, staging: str, summaries: list[FileSummary]) -> None:
    """The challenge set was read, and none of its pids is an MPD pid (checked in Spark only where
    the pid ranges overlap: the real challenge's pids follow the MPD's)."""
    challenge = next((s for s in summaries if s.kind == "challenge"), None)
    if challenge is None:
        return
    if challenge.problem is not None:
        raise InputError(f"challenge set {challenge.source}: {challenge.problem}")
    lo, hi = challenge.pid_min, challenge.pid_max
    if (
        lo is None
        or hi is None
        or not any(
            s.pid_min is not None and s.pid_max is not None and s.pid_min <= hi and lo <= s.pid_max
            for s in summaries
            if s.kind == "mpd"
        )
    ):
        return
    clash = (
        spark.read.parquet(join(staging, "challenge_playlists"))
        .select("pid")
        .join(spark.read.parquet(join(staging, "playlists")).select("pid", "source"), "pid")
    )
    n = clash.count()
    if n:
        first = one_row(clash.orderBy("pid"))
        raise InputError(
            f"challenge set {challenge.source}: {n} of its pids are also MPD pids (pid {first.pid} "
            f"is in {basename(first.source)}); a challenge playlist must have a pid of its own"
        )


def _replace_table(fs: FileStore, df: DataFrame, uri: str) -> None:
    tmp = uri + ".rewrite"
    df.write.mode("overwrite").parquet(tmp)
    fs.delete(uri)
    fs.rename(tmp, uri)


def _drop_duplicates(
    spark: SparkSession, fs: FileStore, staging: str, dups: DataFrame, sources: list[str]
) -> DataFrame:
    """Remove repeated pids from playlists and playlist_tracks; quarantine them with their tracks.

    Returns (track_uri, n) to subtract from the per-file track statistics.
    """
    files = spark.createDataFrame([(s, output_name(s)) for s in sources], "source string, file string")
    # checkpointed: the playlists files they come from are rewritten below
    dups = dups.localCheckpoint()
    dup_keys = dups.select("pid", "source").join(F.broadcast(files), "source").localCheckpoint()
    pt = spark.read.parquet(join(staging, "playlist_tracks")).withColumn(
        "file", F.element_at(F.split(F.input_file_name(), "/"), -1)
    )
    dup_entries = pt.join(F.broadcast(dup_keys), ["pid", "file"]).localCheckpoint()
    tracks = dup_entries.groupBy("pid", "source").agg(
        F.sort_array(
            F.collect_list(F.struct(*[f.name for f in schemas.TRACK_ENTRY if f.name in schemas.PLAYLIST_TRACKS.names]))
        ).alias("tracks")
    )
    quarantined = dups.join(tracks, ["pid", "source"], "left").select(
        "source",
        F.lit(None).cast("int").alias("index"),
        "pid",
        F.lit("duplicate_pid").alias("reason"),
        F.concat(
            F.lit("pid "), F.col("pid").cast("string"), F.lit(" already ingested from "), F.col("first_source")
        ).alias("detail"),
        F.to_json(F.struct(*schemas.PLAYLISTS.names, "tracks")).alias("raw"),
    )
    quarantined.write.mode("append").parquet(join(staging, "quarantine"))
    minus = dup_entries.select("pid", "track_uri").distinct().groupBy("track_uri").agg(F.count("*").alias("n"))
    minus = minus.localCheckpoint()  # computed before playlist_tracks is rewritten under it
    pl = spark.read.parquet(join(staging, "playlists"))
    _replace_table(
        fs, pl.join(dups.select("pid", "source"), ["pid", "source"], "left_anti"), join(staging, "playlists")
    )
    _replace_table(
        fs,
        pt.join(dup_keys.select("pid", "file"), ["pid", "file"], "left_anti").drop("file"),
        join(staging, "playlist_tracks"),
    )
    return minus


def _write_tracks(spark: SparkSession, fs: FileStore, staging: str, minus: DataFrame | None) -> None:
    """Merge the per-file track statistics into the catalogue. Metadata: the smallest per track
    (deterministic even if files disagree). Grouping by a hash of the URI first gives Spark's sorter
    a prefix that discriminates (every URI starts with "spotify:"), which made the merge faster."""
    stats = spark.read.parquet(join(staging, TRACK_STATS))
    tracks = stats.groupBy(F.xxhash64("track_uri").alias("h"), "track_uri").agg(
        F.sum("playlist_count").alias("playlist_count"), F.min(F.struct(*TRACK_META)).alias("m")
    )
    if minus is not None:
        tracks = (
            tracks.join(minus, "track_uri", "left")
            .withColumn("playlist_count", F.col("playlist_count") - F.coalesce("n", F.lit(0)))
            .where("playlist_count > 0")
        )
    tracks.select(
        "track_uri", *[F.col(f"m.{c}").alias(c) for c in TRACK_META], F.col("playlist_count").cast("long")
    ).write.mode("overwrite").parquet(join(staging, "tracks"))
    fs.delete(join(staging, TRACK_STATS))


def _row_counts(
    spark: SparkSession, fs: FileStore, staging: str, summaries: list[FileSummary], n_dups: int
) -> dict[str, int]:
    """Rows per table: from the tasks' summaries where they are exact, else from the Parquet footers."""
    per_kind: dict[str, Counter] = {"mpd": Counter(), "challenge": Counter()}
    for s in summaries:
        per_kind[s.kind].update({"good": s.good, "entries": s.entries, "quarantined": s.quarantine_rows})
    rows = {"tracks": spark.read.parquet(join(staging, "tracks")).count()}
    if n_dups:  # tables were rewritten: count them
        for t in ("playlists", "playlist_tracks", "quarantine"):
            rows[t] = spark.read.parquet(join(staging, t)).count()
    else:
        rows["playlists"] = per_kind["mpd"]["good"]
        rows["playlist_tracks"] = per_kind["mpd"]["entries"]
        rows["quarantine"] = per_kind["mpd"]["quarantined"] + per_kind["challenge"]["quarantined"]
    if fs.exists(join(staging, "challenge_playlists")):
        rows["challenge_playlists"] = per_kind["challenge"]["good"]
        rows["challenge_tracks"] = per_kind["challenge"]["entries"]
    return {t: rows[t] for t in TABLES if t in rows}


def _unknown_seeds(spark: SparkSession, staging: str) -> int:
    """Challenge seeds whose track no MPD playlist holds: kept (the ranking drops what it cannot
    know, so such a playlist is ranked from its other seeds, or as one without seeds), counted."""
    n = (
        spark.read.parquet(join(staging, "challenge_tracks"))
        .select("track_uri")
        .join(spark.read.parquet(join(staging, "tracks")).select("track_uri"), "track_uri", "left_anti")
        .count()
    )
    if n:
        log.warning("ingest: %d challenge seeds are tracks no MPD playlist holds; the ranking ignores them", n)
    return n


def _reason(r: Row) -> str:
    return (
        basename(r["source"]) + (f" pid {r['pid']}" if r["pid"] is not None else "") + f": {r['reason']}: {r['detail']}"
    )


def _ingest_into(
    spark: SparkSession,
    fs: FileStore,
    cfg: Config,
    slices: list[FileInfo],
    challenge: FileInfo | None,
    staging: str,
    run_dir: str,
) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    t0 = time.time()
    items = [(f.uri, "mpd") for f in slices] + ([(challenge.uri, "challenge")] if challenge else [])
    summaries = _process_files(spark, items, staging, cfg.ingest.files_per_task)
    seconds["parse_and_write"] = time.time() - t0
    mpd_bytes = sum(s.bytes for s in summaries if s.kind == "mpd")
    log.info(
        "ingest: %d files (%.0f MB) parsed and written in %.1fs",
        len(summaries),
        mpd_bytes / 1e6,
        seconds["parse_and_write"],
    )

    t0 = time.time()
    if not fs.exists(join(staging, "quarantine")):
        write_empty(schemas.QUARANTINE, staging, "quarantine")
    dups, n_dups = None, 0
    t1 = time.time()
    if _pid_ranges_overlap(summaries):
        with job_step(spark, "ingest: pids repeated across files"):
            dups = _duplicates(spark, staging).cache()
            n_dups = dups.count()
    _check_challenge(spark, staging, summaries)
    by_reason: Counter = Counter()
    for s in summaries:
        by_reason.update(s.by_reason)
    dups_by_file: dict[str, int] = {}
    if dups is not None and n_dups:
        by_reason["duplicate_pid"] += n_dups
        dups_by_file = {r.source: r["count"] for r in dups.groupBy("source").count().collect()}
    by_file = _file_counts(summaries, dups_by_file)
    records = sum(by_reason.values())
    total = sum(s.records for s in summaries)
    share = records / total if total else 0.0
    limit = cfg.ingest.max_quarantine_share
    lost_files = _lost_files(summaries)
    minus = None
    if dups is not None and n_dups:
        with job_step(spark, f"ingest: drop {n_dups} repeated pids"):
            minus = _drop_duplicates(spark, fs, staging, dups, [f.uri for f in slices])
    if dups is not None:
        dups.unpersist()
    seconds["repeated_pids"] = time.time() - t1
    if share > limit:
        worst = sorted(((source, n["quarantined"]) for source, n in by_file.items()), key=lambda kv: (-kv[1], kv[0]))
        reject(
            spark,
            fs,
            run_dir,
            staging,
            stage="ingest",
            counted=f"{records} of {total} records quarantined",
            share=share,
            key="ingest.max_quarantine_share",
            limit=limit,
            by_file=worst,
            order="index",
            reason=_reason,
            fix="the input",
            lost=lost_files,
        )
    if not any(s.good for s in summaries if s.kind == "mpd"):
        raise InputError(
            f"ingest: no playlist could be read from the {len(slices)} slice files of paths.mpd "
            f"({lost_files or 'every record was quarantined'}); nothing was published"
        )
    if records:
        log.warning(
            "ingest: %d records quarantined (%.4f%%, allowed %.4f%%): %s%s",
            records,
            100 * share,
            100 * limit,
            dict(by_reason),
            f"; files that gave no record: {lost_files}" if lost_files else "",
        )
    t1 = time.time()
    with job_step(spark, "ingest: tracks catalogue"):
        _write_tracks(spark, fs, staging, minus)
    seconds["tracks"] = time.time() - t1
    seconds["cross_file"] = time.time() - t0

    rows = _row_counts(spark, fs, staging, summaries, n_dups)
    log.info("ingest: wrote %s", ", ".join(f"{t}={n:,}" for t, n in rows.items()))
    unknown = _unknown_seeds(spark, staging) if "challenge_tracks" in rows else None
    return {
        "inputs": {
            "slice_files": [{"uri": f.uri, "bytes": f.size} for f in slices],
            "slice_bytes": mpd_bytes,
            "challenge": challenge.uri if challenge else None,
        },
        **({"challenge_seeds_not_in_mpd": unknown} if unknown is not None else {}),
        "tables": rows,
        "quarantine": {
            "records": records,
            "of_records": total,
            "share": share,
            "by_reason": dict(by_reason),
            "max_share": limit,
            "by_file": by_file,
            "files_without_records": {s.source: s.problem for s in summaries if s.problem is not None},
        },
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


def run_ingest(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    """Ingest `paths.mpd` (+ `paths.challenge`) into `<paths.run_dir>/ingest`; skip if up to date."""
    fs = HadoopFS(spark)
    slices = resolve_slice_files(fs, cfg.paths.mpd)
    challenge = resolve_challenge(fs, cfg.paths.challenge)
    inputs = slices + ([challenge] if challenge else [])
    run_dir = to_uri(cfg.paths.run_dir)
    fp = fingerprint(inputs, cfg.section_digest("ingest"))
    return run_stage(
        fs,
        run_dir,
        "ingest",
        fp,
        lambda staging: _ingest_into(spark, fs, cfg, slices, challenge, staging, run_dir),
        force=force,
    )
