"""Faults: every stage of the main job killed before, during and after its publish (SIGKILL at
`mpdrec.io.stage.failpoint`), each job run as a user runs it. A killed publish leaves no manifest
over partial data; the rerun ends with the outputs an uninterrupted run wrote, and a stage that had
finished is not run again. Slow (the main job about forty-five times): out of the default run, run by
CI with the cluster checks (`scripts/test.sh -m faults`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, python_env
from mpdrec.io.stage import FAILPOINT, PUBLISH_POINTS

pytestmark = [pytest.mark.faults, pytest.mark.timeout(3600)]

SETTINGS = [
    "synth.num_slices=3",
    "synth.challenge_size=30",
    "paths.challenge=",
    "spark.master=local[2]",
    "spark.conf.spark.sql.shuffle.partitions=4",
    "negatives.shards=2",
    "negatives.eval_playlists=300",
    "als.max_iter=3",
    "als.grid_rank=[8]",
    "als.grid_reg_param=[0.01]",
    "als.grid_alpha=[10]",
    "ncf.model=gmf",
    "ncf.factors=16",
    "ncf.batch_size=4096",
    "ncf.lr=0.25",
    "ncf.epochs=1",
    "ncf.patience=0",
    "rank.models=[als, cooc]",
    "rank.ncf_model=gmf",
    "rank.block_rows=5000",
    "rank.cooc_neighbours=50",
    "rank.blend.method=logistic",
    "rank.blend.compare_ncf=false",
]
# each job of scripts/run_local.sh and the stages it publishes (synth_mpd: the slices' directory, "mpd";
# evaluate publishes none: it writes report.json and report.md, each replaced atomically)
JOBS = [
    ("synth_mpd", ["mpd"]),
    ("ingest_mpd", ["ingest"]),
    ("build_interactions", ["validation", "interactions"]),
    ("sample_negatives", ["negatives"]),
    ("train_als", ["als", "als_leave_one_out"]),
    ("train_ncf", ["ncf/gmf"]),
    ("rank_candidates", ["rank"]),
    ("evaluate", []),
]
OUTPUTS = [
    "mpd/mpd.slice.0-999.json",
    "mpd/mpd.slice.2000-2999.json",
    "ingest/playlists",
    "ingest/playlist_tracks",
    "ingest/tracks",
    "ingest/quarantine",
    "validation/ground_truth",
    "validation/train/ground_truth",
    "validation/challenge_set.json",
    "interactions/data",
    "interactions/track_ids",
    "interactions/playlist_ids",
    "negatives/data",
    "negatives/eval",
    "als/playlist_factors",
    "als/track_factors",
    "ncf/gmf/embeddings/playlists.parquet",
    "ncf/gmf/embeddings/tracks.parquet",
    "rank/als/submission.csv",
    "rank/cooc/submission.csv",
    "rank/ncf/submission.csv",
    "rank/final/submission.csv",
]


def _run(job: str, run_dir: Path, failpoint: str | None = None) -> subprocess.CompletedProcess:
    launcher = (
        [str(Path(sys.executable).parent / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo"]
        if job == "train_ncf"
        else []
    )
    sets = [f"synth.out_dir={run_dir / 'mpd'}", f"paths.mpd={run_dir / 'mpd'}", f"paths.run_dir={run_dir}", *SETTINGS]
    env = {**python_env(), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    if failpoint:
        env[FAILPOINT] = failpoint
    return subprocess.run(
        [*launcher, sys.executable, str(ROOT / "jobs" / f"{job}.py"), *[a for s in sets for a in ("--set", s)]],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def _manifest(run_dir: Path, stage: str) -> dict | None:
    path = run_dir / stage / "_manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


def _digest(run_dir: Path, output: str) -> str:
    """A table's rows in any order (Parquet), or a file's bytes; the run directory's own path (in
    the tables' `source` column: each run reads the slices it generated) written as <run>."""
    path = run_dir / output
    if path.suffix in (".csv", ".json"):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    rows = sorted(
        json.dumps(r, sort_keys=True, default=repr).replace(str(run_dir), "<run>")
        for r in pq.read_table(path).to_pylist()
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    for job, _ in JOBS:
        proc = _run(job, run_dir)
        assert proc.returncode == 0, f"{job}:\n{proc.stderr[-3000:]}"
    return run_dir


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The main job with each stage killed at every publish point, then rerun; the finish time of
    each stage as its killed-after-publish run left it."""
    run_dir = tmp_path_factory.mktemp("interrupted")
    finished: dict[str, str] = {}
    for job, stages in JOBS:
        for stage in stages:
            name = stage.rsplit("/", 1)[-1]
            for point in PUBLISH_POINTS:
                proc = _run(job, run_dir, f"{name}:{point}")
                said = proc.stdout + proc.stderr
                assert proc.returncode != 0 and f"{name}: killed at the failpoint {point}" in said, (
                    f"{job} at {name}:{point} rc={proc.returncode}:\n{said[-3000:]}"
                )
                manifest = _manifest(run_dir, stage)
                if point == "published":
                    assert manifest is not None, f"{stage}: no manifest after its publish"
                    finished[stage] = manifest["finished_at"]
                else:  # never a manifest over what a killed publish left
                    assert manifest is None, f"{stage}: a manifest after a kill at {point}"
        proc = _run(job, run_dir)
        assert proc.returncode == 0, f"{job} after its kills:\n{proc.stderr[-3000:]}"
    return run_dir, finished


def test_a_stage_finished_before_a_kill_is_not_run_again(interrupted):
    run_dir, finished = interrupted
    assert sorted(finished) == sorted(s for _, stages in JOBS for s in stages)
    for stage, at in finished.items():
        assert _manifest(run_dir, stage)["finished_at"] == at, f"{stage} ran again"


@pytest.mark.parametrize("output", OUTPUTS)
def test_outputs_after_the_kills_are_the_uninterrupted_runs(output, uninterrupted, interrupted):
    run_dir, _ = interrupted
    assert _digest(run_dir, output) == _digest(uninterrupted, output), output


def test_the_report_after_the_kills_is_the_uninterrupted_runs(uninterrupted, interrupted):
    run_dir, _ = interrupted
    metrics = [
        {name: m["overall"] for name, m in json.loads((d / "report.json").read_text())["models"].items()}
        for d in (uninterrupted, run_dir)
    ]
    assert metrics[0] == metrics[1] and "final" in metrics[0]
    assert not list((run_dir / "_staging").glob("*")), "a staging directory left behind"
