"""The pipeline on a real Spark standalone cluster (a master and two workers on 127.0.0.1), submitted
with spark-submit from what scripts/package.sh built and nothing else: the jobs from dist/jobs, mpdrec
from dist/mpdrec.zip, the dependencies from dist/mpdrec-env.tar.gz (unpacked once as the "cluster's
Python" for most stages; shipped with --archives for NCF training, whose executors run
./env/bin/python). Every stage's output must equal a local-mode run of the same config, also when a
worker is killed in the middle of a stage.

Marked `cluster`: out of the default run (several minutes), run by CI (.ci/run).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, make_config
from standalone_cluster import SPARK_HOME, StandaloneCluster, free_port

# the first test's setup runs the packaging, the local reference run and seven spark-submits: more than
# the default 900 s per test since the rank stage runs more (small) Spark jobs than it did
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]

SHUFFLE_PARTITIONS = 4  # as the session fixture's local[2]
SETTINGS = [
    "paths.challenge=",
    f"spark.conf.spark.sql.shuffle.partitions={SHUFFLE_PARTITIONS}",
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
    "ncf.launcher=spark",
    "ncf.num_proc=2",
    "rank.models=[als]",
    "rank.ncf_model=gmf",
    "rank.block_rows=5000",
    "rank.blend.method=logistic",
    "rank.blend.compare_ncf=false",  # the NCF blend variant: tests/test_ncf_train.py
]
# (job, stage name in the outputs, tables it writes under the run directory)
JOBS = [
    ("ingest_mpd.py", "ingest", ["ingest/playlists", "ingest/playlist_tracks", "ingest/tracks", "ingest/quarantine"]),
    (
        "build_interactions.py",
        "interactions",
        [
            "validation/ground_truth",
            "validation/holdouts",
            "validation/train/ground_truth",
            "interactions/data",
            "interactions/track_ids",
            "interactions/playlist_ids",
        ],
    ),
    ("sample_negatives.py", "negatives", ["negatives/data", "negatives/eval"]),
    ("train_als.py", "als", ["als/playlist_factors", "als/track_factors"]),
    ("train_ncf.py", "ncf", ["ncf/gmf/embeddings/playlists.parquet", "ncf/gmf/embeddings/tracks.parquet"]),
    ("rank_candidates.py", "rank", ["rank/final/submission.csv", "rank/ncf/submission.csv", "rank/als/submission.csv"]),
]
KILLED_DURING = "build_interactions.py"


@pytest.fixture(scope="module")
def packaging(tmp_path_factory):
    """scripts/package.sh as a user runs it (uncompressed gzip: packed and unpacked on one disk here),
    then the environment unpacked once: the Python a cluster would have pre-installed. Started in the
    background (mostly pip and disk) while the local-mode reference run computes."""
    out, unpacked = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("cluster_python")
    script = (
        f'bash "{ROOT}/scripts/package.sh" --out "{out}" --compress-level 0 && '
        f'tar xzf "{out}/mpdrec-env.tar.gz" -C "{unpacked}"'
    )
    log = out.parent / "package.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(["bash", "-c", script], stdout=sink, stderr=subprocess.STDOUT)
    yield proc, out, unpacked / "bin" / "python", log
    proc.kill()


@pytest.fixture(scope="module")
def dist(packaging) -> Path:
    proc, out, _, log = packaging
    assert proc.wait(timeout=900) == 0, log.read_text()[-5000:]
    return out


@pytest.fixture(scope="module")
def cluster_python(packaging, dist) -> Path:
    return packaging[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = StandaloneCluster(tmp_path_factory.mktemp("standalone"), workers=2, cores=1, memory="3g")
    c.start()
    yield c
    c.stop()


def _sets(run_dir: Path, synth_dir: Path) -> list[str]:
    return [f"paths.mpd={synth_dir}", f"paths.run_dir={run_dir}", *SETTINGS]


@pytest.fixture(scope="module")
def local_run(packaging, spark, synth_dir, tmp_path_factory) -> Path:
    """The same stages in local mode (the session's local[2]), in this process."""
    from mpdrec.etl.ingest import run_ingest
    from mpdrec.etl.stages import run_interactions, run_negatives, run_validation
    from mpdrec.models.als_grid import run_als
    from mpdrec.models.ncf.launch import launch
    from mpdrec.rank.stage import run_rank

    run_dir = tmp_path_factory.mktemp("local_run")
    cfg = make_config(_sets(run_dir, synth_dir))
    for stage in (run_ingest, run_validation, run_interactions, run_negatives, run_als):
        stage(spark, cfg)
    launch(cfg)
    run_rank(spark, cfg)
    return run_dir


def _busy_executors(ui_port: int) -> int:
    """Executors (not the driver) running tasks right now, from the driver's REST API."""
    base = f"http://127.0.0.1:{ui_port}/api/v1/applications"
    try:
        with urllib.request.urlopen(base, timeout=2) as r:
            app = json.load(r)[0]["id"]
        with urllib.request.urlopen(f"{base}/{app}/executors", timeout=2) as r:
            return sum(e["id"] != "driver" and e["activeTasks"] > 0 for e in json.load(r))
    except (OSError, IndexError, KeyError, ValueError):
        return 0


@pytest.fixture(scope="module")
def cluster_run(cluster, dist, cluster_python, synth_dir, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """spark-submit every job to the cluster; during KILLED_DURING, worker 2 is killed while both
    executors run tasks (and started again afterwards, as a replaced node). Returns the run directory
    and each job's log."""
    run_dir = tmp_path_factory.mktemp("cluster_run")
    work = tmp_path_factory.mktemp("submit_cwd")  # no checkout in sight: cwd has nothing of mpdrec
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "VIRTUAL_ENV")}
    env.update(SPARK_LOCAL_IP="127.0.0.1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    logs = {}
    for job, _, _ in JOBS:
        ui_port = free_port()
        with_env = job == "train_ncf.py"  # executors unpack the archive and run its Python
        executor_python = "./env/bin/python" if with_env else str(cluster_python)
        cmd = [
            str(SPARK_HOME / "bin" / "spark-submit"),
            "--master",
            cluster.url,
            "--py-files",
            str(dist / "mpdrec.zip"),
            *(["--archives", f"{dist / 'mpdrec-env.tar.gz'}#env"] if with_env else []),
            "--conf",
            f"spark.pyspark.python={executor_python}",
            "--conf",
            f"spark.pyspark.driver.python={cluster_python}",
            "--conf",
            "spark.executor.memory=2g",
            "--conf",
            f"spark.ui.port={ui_port}",
            str(dist / "jobs" / job),
            "--profile",
            "cluster",
            *[a for s in _sets(run_dir, synth_dir) for a in ("--set", s)],
        ]
        log = work / f"{job}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
            if job == KILLED_DURING:  # once both executors run tasks: worker 2's dies in the middle of one
                deadline, busy = time.monotonic() + 120, 0
                while proc.poll() is None and time.monotonic() < deadline:
                    busy = _busy_executors(ui_port)
                    if busy == 2:
                        break
                    time.sleep(0.05)
                assert busy == 2 and proc.poll() is None, "the job ran no moment with both executors busy"
                cluster.kill_worker(2)
            code = proc.wait(timeout=900)
        logs[job] = log.read_text()
        assert code == 0, f"{job} failed on the cluster:\n{logs[job][-5000:]}"
        if job == KILLED_DURING:
            cluster.start_worker(2)
            cluster.wait_for_workers(2)
        cluster.remove_finished_apps()
    return run_dir, logs


def _table(path: Path) -> pd.DataFrame:
    """A stage's Parquet table, sorted on its scalar columns (row order is not part of the contract)."""
    df = pq.read_table(path).to_pandas()
    scalar = [c for c in df.columns if not isinstance(df[c].iloc[0] if len(df) else 0, (list, np.ndarray))]
    return df.sort_values(scalar).reset_index(drop=True) if scalar else df


@pytest.mark.parametrize("job, stage, tables", JOBS, ids=[s for _, s, _ in JOBS])
def test_each_stage_on_the_cluster_matches_local_mode(job, stage, tables, local_run, cluster_run):
    run_dir, _ = cluster_run
    for table in tables:
        if table.endswith(".csv"):  # a submission: the same file, byte for byte
            same = (run_dir / table).read_bytes() == (local_run / table).read_bytes()
            assert same, f"{table} differs from local mode's"
            continue
        local, remote = _table(local_run / table), _table(run_dir / table)
        assert len(remote) == len(local) and (len(remote) > 0 or table == "ingest/quarantine"), table
        for column in local.columns:
            if len(local) and isinstance(local[column].iloc[0], (list, np.ndarray)):  # factors, embeddings
                np.testing.assert_allclose(
                    np.stack(remote[column]), np.stack(local[column]), rtol=1e-4, atol=1e-6, err_msg=f"{table}.{column}"
                )
            else:
                pd.testing.assert_series_equal(remote[column], local[column], obj=f"{table}.{column}")


def test_a_worker_killed_mid_stage_costs_nothing(cluster_run, cluster):
    """The killed worker's executor was lost with tasks running (the driver logs the loss at ERROR);
    the stage finished on the other worker (outputs equal local mode's: test above) and the restarted
    worker rejoined."""
    _, logs = cluster_run
    lost = [line for line in logs[KILLED_DURING].splitlines() if "Lost executor" in line]
    assert lost, "\n".join(line for line in logs[KILLED_DURING].splitlines() if "WindowExec" not in line)[-5000:]
    assert cluster.alive_workers() == 2


def test_ncf_trains_on_both_executors_through_horovod_spark_run(cluster_run):
    _, logs = cluster_run
    ncf_log = logs["train_ncf.py"]
    assert "trained 1 epochs on 2 rank(s)" in ncf_log, ncf_log[-3000:]


def test_package_holds_the_code_and_an_environment_without_it(dist, cluster_python):
    names = zipfile.ZipFile(dist / "mpdrec.zip").namelist()
    assert "mpdrec/cli.py" in names and "mpdrec/conf/base.yaml" in names and "mpdrec/conf/cluster.yaml" in names
    assert not [n for n in names if ".dist-info" in n]
    assert sorted(p.name for p in (dist / "jobs").glob("*.py")) == sorted(p.name for p in (ROOT / "jobs").glob("*.py"))
    # the environment has every dependency and not mpdrec: the code comes from the zip alone
    probe = "import tensorflow, horovod.tensorflow, pyspark, pyarrow, pandas, numpy, yaml, matplotlib"
    assert subprocess.run([str(cluster_python), "-c", probe], capture_output=True).returncode == 0
    assert (
        subprocess.run([str(cluster_python), "-c", "import mpdrec"], capture_output=True, cwd=dist.parent).returncode
        != 0
    )
    # the code digest in every stage's fingerprint is the checkout's, read from inside the zip
    from mpdrec.io.stage import code_digest

    zipped = subprocess.run(
        [str(cluster_python), "-c", "from mpdrec.io.stage import code_digest; print(code_digest())"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(dist / "mpdrec.zip")},
    )
    assert zipped.stdout.strip() == code_digest(), zipped.stderr[-2000:]
