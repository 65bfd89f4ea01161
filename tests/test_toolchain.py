"""The installed toolchain works as the pipeline will use it: Horovod over Gloo with TensorFlow,
and jobs launched by spark-submit exactly as on a cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, python_env

HVD_SCRIPT = """
import json, sys
import tensorflow as tf
import horovod.tensorflow as hvd
hvd.init()
v = tf.Variable([float(hvd.rank() + 1)] * 3)
hvd.broadcast_variables([v], root_rank=0)
total = hvd.allreduce(tf.constant([float(hvd.rank() + 1)]), op=hvd.Sum)
print("RESULT", json.dumps({"rank": hvd.rank(), "size": hvd.size(), "broadcast": v.numpy().tolist(),
                           "sum": float(total.numpy()[0])}), flush=True)
"""


def test_horovodrun_two_processes_over_gloo(tmp_path):
    script = tmp_path / "hvd_check.py"
    script.write_text(HVD_SCRIPT)
    horovodrun = Path(sys.executable).parent / "horovodrun"
    env = {**python_env(), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [str(horovodrun), "-np", "2", "-H", "localhost:2", "--gloo", sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = sorted(
        (json.loads(line.split("RESULT", 1)[1]) for line in proc.stdout.splitlines() if "RESULT" in line),
        key=lambda r: r["rank"],
    )
    assert [r["rank"] for r in results] == [0, 1]
    assert all(r["size"] == 2 and r["sum"] == 3.0 and r["broadcast"] == [1.0, 1.0, 1.0] for r in results)


def test_ingest_job_through_spark_submit(synth_dir, tmp_path):
    spark_submit = shutil.which("spark-submit", path=str(Path(sys.executable).parent))
    assert spark_submit, "pyspark's spark-submit is missing from the environment"
    env = {**python_env(), "PYSPARK_DRIVER_PYTHON": sys.executable}
    cmd = [
        spark_submit,
        "--master",
        "local[2]",
        "--driver-memory",
        "1g",
        str(ROOT / "jobs" / "ingest_mpd.py"),
        "--set",
        f"paths.mpd={synth_dir}",
        "--set",
        f"paths.run_dir={tmp_path}",
        "--set",
        "spark.master=",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "ingest done" in proc.stdout and "playlists=3,000" in proc.stdout
    manifest = json.loads((tmp_path / "ingest" / "_manifest.json").read_text())
    assert manifest["tables"]["playlists"] == 3000
    assert os.path.isdir(tmp_path / "ingest" / "tracks")
