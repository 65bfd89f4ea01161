"""Shared fixtures: a real local SparkSession and a small synthetic MPD, made once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"


@pytest.fixture(scope="session")
def spark():
    from mpdrec.config import SparkConfig
    from mpdrec.spark import build_spark

    session = build_spark(
        SparkConfig(
            master="local[2]",
            conf={
                "spark.driver.memory": "2g",
                "spark.sql.shuffle.partitions": "4",
                "spark.ui.enabled": "false",
            },
        ),
        "mpdrec-tests",
    )
    yield session
    session.stop()


@pytest.fixture
def small_arrow_batches(spark):
    """Arrow batches of 7 rows: a group's rows span several batches of a `mapInArrow`, as at scale
    (`mpdrec.sorted_groups`)."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "7")
    yield
    spark.conf.set(key, before)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """3 slices (3,000 playlists) and a 30-playlist challenge set, written by the real generator."""
    from mpdrec.synth.generate import generate

    out = tmp_path_factory.mktemp("synth") / "mpd"
    generate(make_config(synth_overrides={"num_slices": 3, "challenge_size": 30, "out_dir": str(out)}).synth)
    return out


def make_config(overrides: list[str] | None = None, synth_overrides: dict | None = None):
    """The real config loader over conf/, with --set style overrides."""
    from mpdrec.config import load_config

    sets = list(overrides or [])
    sets += [f"synth.{k}={v}" for k, v in (synth_overrides or {}).items()]
    return load_config(CONF_DIR, "local", [], sets)


def python_env() -> dict[str, str]:
    """Environment for subprocesses running this interpreter's jobs."""
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    return env


def negatives_run(spark, synth_dir: Path, out: Path) -> Path:
    """`out` as a run directory with ingest, validation, interactions and negatives of the small
    synthetic MPD (positives in 4 shards, 300 leave-one-out playlists): what the Horovod-trained
    models read."""
    from mpdrec.etl.ingest import run_ingest
    from mpdrec.etl.stages import run_interactions, run_negatives, run_validation

    cfg = make_config(
        [
            f"paths.mpd={synth_dir}",
            f"paths.run_dir={out}",
            "paths.challenge=",
            "negatives.shards=4",
            "negatives.eval_playlists=300",
        ]
    )
    for stage in (run_ingest, run_validation, run_interactions, run_negatives):
        stage(spark, cfg)
    return out


def horovod_env() -> dict[str, str]:
    """A training job's environment: this interpreter, TensorFlow quiet, no GPU."""
    return {**python_env(), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def files_under(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def rank_digests(stdout: str) -> dict[int, str]:
    """Each Horovod rank's `rank r/size weights sha256 x` line."""
    found = {}
    for line in stdout.splitlines():
        if "weights sha256" in line:
            words = line.split()
            found[int(words[words.index("rank") + 1].split("/")[0])] = words[-1]
    return found
