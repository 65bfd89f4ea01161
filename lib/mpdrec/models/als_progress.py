"""Progress of a Spark ML ALS fit, logged once per iteration.

Spark's ALS takes no callback and logs nothing per iteration, and at full MPD size a fit runs for
half an hour or more. Each iteration persists its item factors as an RDD named `itemFactors-<i>`
(and drops the previous one), so a thread that polls the driver's storage information sees an
iteration end without touching the fit.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from pyspark.sql import SparkSession

log = logging.getLogger("mpdrec.als")
ITEM_FACTORS = "itemFactors-"  # the name Spark's ALS.train gives each iteration's persisted item factors


def latest_iteration(spark: SparkSession) -> int:
    """The highest iteration whose item factors are cached now (0: none yet)."""
    names = [info.name() for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()]
    return max((int(n[len(ITEM_FACTORS):]) for n in names if n and n.startswith(ITEM_FACTORS)
                and n[len(ITEM_FACTORS):].isdigit()), default=0)


@contextmanager
def logged_iterations(spark: SparkSession, max_iter: int, label: str, every: float = 10.0) -> Iterator[None]:
    """Log `label: iteration i/max_iter after s` at INFO for each iteration seen while the block runs
    (polled every `every` seconds, so a fast fit logs fewer), then the fit's total time."""
    done, started = threading.Event(), time.monotonic()

    def poll() -> None:
        seen = 0
        while not done.wait(every):
            try:
                latest = latest_iteration(spark)
            except Exception:  # the session is stopping: progress is not worth an error
                return
            if latest > seen:
                seen = latest
                log.info("%s: iteration %d/%d after %.0fs", label, seen, max_iter, time.monotonic() - started)

    thread = threading.Thread(target=poll, name="als-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    log.info("%s: %d iterations in %.0fs", label, max_iter, time.monotonic() - started)
