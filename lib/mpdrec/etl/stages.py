"""Stage runners over the run directory: each reads its upstream stages' manifests as inputs, so a
stage reruns exactly when something it depends on changed."""
from __future__ import annotations

from typing import Any, Callable, Iterable

from pyspark.sql import SparkSession

from mpdrec.config import NEGATIVE_DRAW_KEYS, Config, stable_digest
from mpdrec.errors import InputError
from mpdrec.etl.index import build_interactions
from mpdrec.etl.negatives import build_positives, playlist_subset
from mpdrec.etl.split import build_validation
from mpdrec.io.fs import FileInfo, FileStore, HadoopFS, LocalFS
from mpdrec.io.paths import has_glob, is_local, join, to_uri
from mpdrec.io.stage import MANIFEST, fingerprint, run_stage
from mpdrec.spark import job_step


INGEST = ("ingest", "jobs/ingest_mpd.py")  # (stage, the job that writes it)
VALIDATION = ("validation", "jobs/build_interactions.py")
INTERACTIONS = ("interactions", "jobs/build_interactions.py")
TABLE_INTERACTIONS = ("interactions", "jobs/ingest_table.py")  # a table run's


def upstream(fs: FileStore, run_dir: str, stage: str, job: str) -> FileInfo:
    """The manifest of a finished upstream stage (its identity as an input), or a clear error."""
    hits = fs.glob(join(run_dir, stage, MANIFEST))
    if not hits:
        raise InputError(f"{join(run_dir, stage)} has no finished output: run {job} first")
    return hits[0]


def check_local_upstream(cfg: Config, stages: Iterable[tuple[str, str]]) -> None:
    """Fail before Spark starts when an upstream stage of a local run directory has not finished
    (on an object store, each stage checks its inputs through Spark's filesystem as it starts)."""
    run_dir = to_uri(cfg.paths.run_dir)
    if is_local(run_dir):
        for stage, job in stages:
            upstream(LocalFS(), run_dir, stage, job)


def negatives_upstream(cfg: Config) -> list[tuple[str, str]]:
    """What jobs/sample_negatives.py reads: the interactions, unless negatives.input names a table."""
    return [INTERACTIONS] if cfg.negatives.input is None else []


def run_after(spark: SparkSession, cfg: Config, name: str, after: str, job: str, sections: tuple[str, ...],
              build: Callable[[str, str], dict[str, Any]], force: bool = False) -> dict[str, Any]:
    """Stage `<run_dir>/<name>` over the finished stage `<run_dir>/<after>` (written by `job`): its
    manifest is the input, `sections` of the config the rest of the fingerprint; `build(after_dir,
    staging)` writes the output."""
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    fp = fingerprint([upstream(fs, run_dir, after, job)], cfg.section_digest(*sections))
    return run_stage(fs, run_dir, name, fp, lambda staging: build(join(run_dir, after), staging), force=force)


def run_validation(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    inputs = [upstream(fs, run_dir, *INGEST)]
    fp = fingerprint(inputs, cfg.section_digest("seed", "validation"))

    def build(staging: str) -> dict[str, Any]:
        with job_step(spark, "build_interactions: validation challenge"):
            return build_validation(spark, join(run_dir, "ingest"), staging, cfg.validation.per_category,
                                    cfg.validation.train_per_category, cfg.seed)

    return run_stage(fs, run_dir, "validation", fp, build, force=force)


def run_interactions(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    inputs = [upstream(fs, run_dir, *INGEST), upstream(fs, run_dir, *VALIDATION)]
    fp = fingerprint(inputs, cfg.section_digest("interactions"))

    def build(staging: str) -> dict[str, Any]:
        with job_step(spark, "build_interactions: ids and interactions"):
            return build_interactions(spark, join(run_dir, "ingest"), join(run_dir, "validation"), staging,
                                      cfg.interactions.files)

    return run_stage(fs, run_dir, "interactions", fp, build, force=force)


def run_negatives(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    if cfg.negatives.input is None:
        source = join(run_dir, "interactions", "data")
        inputs = [upstream(fs, run_dir, *s) for s in negatives_upstream(cfg)]
    else:
        source = to_uri(cfg.negatives.input)
        inputs = fs.glob(source if has_glob(source) else join(source, "*.parquet"))
        if not inputs:
            raise InputError(f"config key 'negatives.input': no Parquet files in {cfg.negatives.input}")
    written_keys = {k: v for k, v in cfg.as_dict()["negatives"].items() if k not in NEGATIVE_DRAW_KEYS}
    fp = fingerprint(inputs, stable_digest({"seed": cfg.seed, "negatives": written_keys}))

    def build(staging: str) -> dict[str, Any]:
        interactions = spark.read.parquet(source)
        num_tracks = int(interactions.agg({"track_idx": "max"}).first()[0]) + 1
        n = cfg.negatives
        interactions = playlist_subset(interactions, n.subset, n.subset_size, n.subset_track, cfg.seed)
        subset = {"how": n.subset}
        if n.subset != "all":
            subset |= {"playlists": interactions.select("playlist_idx").distinct().count(),
                       "track": None if n.subset == "random" else (n.subset_track or 0)}
        with job_step(spark, f"sample_negatives: training positives in {n.shards} shards, "
                             f"{n.eval_playlists} leave-one-out playlists"):
            written = build_positives(spark, interactions, num_tracks, join(staging, "data"), n.shards, cfg.seed,
                                      join(staging, "eval"), n.eval_playlists, n.eval_negatives)
        return {"subset": subset} | written

    return run_stage(fs, run_dir, "negatives", fp, build, force=force)
