"""The run directory's stages as inputs of one another: which job writes each stage a job reads,
the check that it finished, and a stage run over one finished upstream stage. Every layer that runs
a stage uses these (etl, models, rank, the studies), so they live below all of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pyspark.sql import SparkSession

from mpdrec.config import Config
from mpdrec.errors import InputError
from mpdrec.io.fs import FileInfo, FileStore, HadoopFS, LocalFS
from mpdrec.io.paths import is_local, join, to_uri
from mpdrec.io.stage import MANIFEST, fingerprint, run_stage

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


def run_after(
    spark: SparkSession,
    cfg: Config,
    name: str,
    after: str,
    job: str,
    sections: tuple[str, ...],
    build: Callable[[str, str], dict[str, Any]],
    force: bool = False,
) -> dict[str, Any]:
    """Stage `<run_dir>/<name>` over the finished stage `<run_dir>/<after>` (written by `job`): its
    manifest is the input, `sections` of the config the rest of the fingerprint; `build(after_dir,
    staging)` writes the output."""
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    fp = fingerprint([upstream(fs, run_dir, after, job)], cfg.section_digest(*sections))
    return run_stage(fs, run_dir, name, fp, lambda staging: build(join(run_dir, after), staging), force=force)
