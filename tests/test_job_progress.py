"""Progress a user sees at INFO while a long step runs: the step's heartbeat with its stages' tasks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pandas as pd

from mpdrec.spark import job_step, running_stages


def test_a_running_step_logs_its_time_and_tasks(spark, caplog):
    def _slow(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:  # local: pickled by value for the workers
        for frame in frames:
            time.sleep(0.4)
            yield frame

    with caplog.at_level("INFO", logger="mpdrec.progress"), job_step(spark, "slow step", every=0.2):
        spark.range(0, 800, numPartitions=8).mapInPandas(_slow, "id long").count()
    beats = [m for m in caplog.messages if m.startswith("slow step: running for")]
    assert beats, caplog.messages
    assert any("tasks" in m for m in beats), beats
    assert spark.sparkContext.getLocalProperty("spark.job.description") is None
    assert _no_stage_left(spark), running_stages(spark)


def _no_stage_left(spark, wait: float = 10.0) -> bool:
    """Whether the status tracker shows no active stage within `wait` seconds: it is fed by Spark's
    listener bus, which may report the job's last stage done a moment after `count()` returns."""
    deadline = time.monotonic() + wait
    while running_stages(spark):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_quick_step_logs_nothing(spark, caplog):
    with caplog.at_level("INFO", logger="mpdrec.progress"), job_step(spark, "quick step", every=30):
        spark.range(10).count()
    assert not [m for m in caplog.messages if m.startswith("quick step")]
