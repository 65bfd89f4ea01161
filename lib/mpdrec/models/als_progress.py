"""Progress of a Spark ML ALS fit, logged once per iteration.

Spark's ALS takes no callback and logs nothing per iteration, and at full MPD size a fit runs for
half an hour or more. Each iteration persists its item factors as an RDD named `itemFactors-<i>`
(and drops the previous one), so a thread that polls the driver's storage information sees an
iteration end without touching the fit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from mpdrec.spark import ticking

log = logging.getLogger("mpdrec.als")
ITEM_FACTORS = "itemFactors-"  # the name Spark's ALS.train gives each iteration's persisted item factors


def latest_iteration(spark: SparkSession) -> int:
    """The highest iteration whose item factors are cached now (0: none yet)."""
    names = [info.name() for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()]
    return max(
        (
            int(n[len(ITEM_FACTORS) :])
            for n in names
            if n and n.startswith(ITEM_FACTORS) and n[len(ITEM_FACTORS) :].isdigit()
        ),
        default=0,
    )


@contextmanager
def logged_iterations(spark: SparkSession, max_iter: int, label: str, every: float = 10.0) -> Iterator[None]:
    """Log `label: iteration i/max_iter after s` at INFO for each iteration seen while the block runs
    (polled every `every` seconds, so a fast fit logs fewer), then the fit's total time."""
    seen = [0]

    def poll(seconds: float) -> None:
        latest = latest_iteration(spark)
        if latest > seen[0]:
            seen[0] = latest
            log.info("%s: iteration %d/%d after %.0fs", label, latest, max_iter, seconds)

    started = time.monotonic()
    with ticking(every, poll):
        yield
    log.info("%s: %d iterations in %.0fs", label, max_iter, time.monotonic() - started)
