"""scripts/submit_dataproc.sh and scripts/submit_emr.sh: the exact commands --dry-run prints, and
their refusals. (The packaged artifacts themselves run on a real cluster in test_cluster.py.)"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

ALL_JOBS = [
    "ingest_mpd.py",
    "build_interactions.py",
    "sample_negatives.py",
    "train_als.py",
    "train_ncf.py",
    "rank_candidates.py",
    "evaluate.py",
]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """What scripts/package.sh --no-env builds, plus a stand-in for the (large) environment archive."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "package.sh"), "--out", str(out), "--no-env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out / "mpdrec-env.tar.gz").write_bytes(b"stand-in")
    return out


@pytest.fixture(scope="module")
def bare_path(tmp_path_factory) -> str:
    """A PATH with bash, dirname and python3 only (no gcloud, no aws, no venv): all the scripts need."""
    bin_dir = tmp_path_factory.mktemp("bin")
    for tool in ("bash", "dirname", "python3"):
        (bin_dir / tool).symlink_to(shutil.which(tool, path="/usr/bin:/bin"))
    return str(bin_dir)


def _submit(path: str, platform: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(path) / "bash"), str(ROOT / "scripts" / f"submit_{platform}.sh"), *args],
        capture_output=True,
        text=True,
        env={"PATH": path},
        timeout=60,
    )


def _commands(proc: subprocess.CompletedProcess) -> list[list[str]]:
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line) for line in proc.stdout.splitlines()]


def _flag(cmd: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in cmd if a.startswith(name + "="))


def test_dataproc_dry_run_uploads_then_submits_every_stage_in_order(dist, bare_path, tmp_path):
    extra = tmp_path / "big.yaml"
    extra.write_text("als:\n  max_iter: 20\n")
    cmds = _commands(
        _submit(
            bare_path,
            "dataproc",
            "--cluster",
            "c1",
            "--region",
            "europe-west1",
            "--staging",
            "gs://b/m/",
            "--run-dir",
            "gs://b/runs/r1",
            "--mpd",
            "gs://b/mpd",
            "--dist",
            str(dist),
            "--config",
            str(extra),
            "--dry-run",
            "--",
            "--set",
            "seed=7",
        )
    )
    uploads, submits = cmds[:2], cmds[2:]
    assert uploads[0] == [
        "gcloud",
        "storage",
        "cp",
        str(dist / "mpdrec.zip"),
        str(dist / "mpdrec-env.tar.gz"),
        str(extra),
        "gs://b/m/",
    ]
    assert uploads[1] == ["gcloud", "storage", "cp", *[str(dist / "jobs" / j) for j in ALL_JOBS], "gs://b/m/jobs/"]
    assert [c[5] for c in submits] == [f"gs://b/m/jobs/{j}" for j in ALL_JOBS]
    for cmd in submits:
        assert cmd[:5] == ["gcloud", "dataproc", "jobs", "submit", "pyspark"]
        assert _flag(cmd, "--cluster") == "c1" and _flag(cmd, "--region") == "europe-west1"
        assert _flag(cmd, "--py-files") == "gs://b/m/mpdrec.zip"
        assert _flag(cmd, "--archives") == "gs://b/m/mpdrec-env.tar.gz#env"
        assert _flag(cmd, "--files") == "gs://b/m/big.yaml"
        props = dict(p.split("=", 1) for p in _flag(cmd, "--properties").split(","))
        assert props["spark.submit.deployMode"] == "cluster"
        assert props["spark.driver.memory"] == "6g" and props["spark.driver.memoryOverhead"] == "5g"
        assert props["spark.pyspark.python"] == props["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] == "./env/bin/python"
        job_args = cmd[cmd.index("--") + 1 :]
        assert job_args[:6] == [
            "--profile",
            "dataproc",
            "--set",
            "paths.run_dir=gs://b/runs/r1",
            "--set",
            "paths.mpd=gs://b/mpd",
        ]
        assert job_args[6:10] == ["--config", "big.yaml", "--set", "seed=7"]
    ncf = submits[ALL_JOBS.index("train_ncf.py")]
    assert ncf[-2:] == ["--set", "ncf.launcher=spark"]  # Horovod on the executors
    assert "spark.task.resource.gpu.amount" not in _flag(ncf, "--properties")
    assert "spark.task.cpus=4" in _flag(ncf, "--properties").split(",")  # one CPU rank per executor


def test_dataproc_gpu_and_preinstalled_dependencies(dist, bare_path):
    cmds = _commands(
        _submit(
            bare_path,
            "dataproc",
            "--cluster",
            "c1",
            "--region",
            "r",
            "--staging",
            "gs://b/m",
            "--run-dir",
            "gs://b/r",
            "--dist",
            str(dist),
            "--stages",
            "rank,ncf",
            "--gpu",
            "--no-env",
            "--dry-run",
        )
    )
    assert cmds[0] == ["gcloud", "storage", "cp", str(dist / "mpdrec.zip"), "gs://b/m/"]
    ncf, rank = cmds[2:]  # pipeline order, whatever the order asked
    assert ncf[5].endswith("train_ncf.py") and rank[5].endswith("rank_candidates.py")
    assert not [a for a in ncf + rank if a.startswith("--archives")]
    ncf_props = dict(p.split("=", 1) for p in _flag(ncf, "--properties").split(","))
    driver = {"spark.driver.memory": "6g", "spark.driver.memoryOverhead": "5g"}
    assert ncf_props == {
        "spark.submit.deployMode": "cluster",
        **driver,
        "spark.executor.resource.gpu.amount": "1",
        "spark.task.resource.gpu.amount": "1",
    }  # one task, one Horovod rank per GPU
    assert dict(p.split("=", 1) for p in _flag(rank, "--properties").split(",")) == {
        "spark.submit.deployMode": "cluster",
        **driver,
    }


def test_emr_dry_run_adds_one_spark_step_per_stage(dist, bare_path):
    cmds = _commands(
        _submit(
            bare_path,
            "emr",
            "--cluster-id",
            "j-1ABC",
            "--region",
            "eu-west-1",
            "--staging",
            "s3://b/m",
            "--run-dir",
            "s3://b/runs/r1",
            "--challenge",
            "s3://b/challenge_set.json",
            "--stages",
            "ingest,als",
            "--dist",
            str(dist),
            "--dry-run",
        )
    )
    *uploads, add_steps = cmds
    assert uploads == [
        ["aws", "s3", "cp", str(dist / "mpdrec.zip"), "s3://b/m/mpdrec.zip"],
        ["aws", "s3", "cp", str(dist / "mpdrec-env.tar.gz"), "s3://b/m/mpdrec-env.tar.gz"],
        ["aws", "s3", "cp", str(dist / "jobs" / "ingest_mpd.py"), "s3://b/m/jobs/ingest_mpd.py"],
        ["aws", "s3", "cp", str(dist / "jobs" / "train_als.py"), "s3://b/m/jobs/train_als.py"],
    ]
    assert add_steps[:5] == ["aws", "emr", "add-steps", "--cluster-id", "j-1ABC"]
    assert add_steps[-2:] == ["--region", "eu-west-1"]
    steps = json.loads(add_steps[add_steps.index("--steps") + 1])
    assert [s["Name"] for s in steps] == ["mpdrec-ingest", "mpdrec-als"]
    for step, job in zip(steps, ["ingest_mpd.py", "train_als.py"]):
        assert step["Jar"] == "command-runner.jar" and step["ActionOnFailure"] == "CANCEL_AND_WAIT"
        args = step["Args"]
        assert args[:5] == [
            "spark-submit",
            "--py-files",
            "s3://b/m/mpdrec.zip",
            "--archives",
            "s3://b/m/mpdrec-env.tar.gz#env",
        ]
        assert "spark.pyspark.python=./env/bin/python" in args and "spark.submit.deployMode=cluster" in args
        assert "spark.driver.memory=6g" in args and "spark.driver.memoryOverhead=5g" in args
        i = args.index(f"s3://b/m/jobs/{job}")
        assert args[i + 1 :] == [
            "--profile",
            "emr",
            "--set",
            "paths.run_dir=s3://b/runs/r1",
            "--set",
            "paths.challenge=s3://b/challenge_set.json",
        ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stages", "ingest,train"], "unknown stage(s) ['train']"),
        (["--dist", "/nonexistent"], "missing /nonexistent/mpdrec.zip"),
    ],
)
def test_mistakes_are_named_before_anything_runs(dist, bare_path, args, message):
    proc = _submit(
        bare_path,
        "emr",
        "--cluster-id",
        "j-1",
        "--staging",
        "s3://b/m",
        "--run-dir",
        "s3://b/r",
        "--dist",
        str(dist),
        *args,
        "--dry-run",
    )
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_without_the_cloud_cli_it_says_so(dist, bare_path):
    proc = _submit(
        bare_path,
        "dataproc",
        "--cluster",
        "c",
        "--region",
        "r",
        "--staging",
        "gs://b/m",
        "--run-dir",
        "gs://b/r",
        "--dist",
        str(dist),
    )
    assert proc.returncode == 2 and "`gcloud` is not on PATH" in proc.stderr
