"""What each Horovod rank runs inside its Spark task when `ncf.launcher=spark`.

horovod.spark.run starts every rank as a new Python process beside the task. That process inherits
the executor's environment but not the `--py-files` that Spark puts on its own Python workers'
sys.path, so where mpdrec comes from mpdrec.zip (a cluster without mpdrec installed) the rank could
not even unpickle `train_on_rank`. This module is pickled by value (see launch.py): loading it needs
nothing of mpdrec. It puts the shipped files, which Spark places in the task's working directory, on
sys.path first, then unpickles the config and trains.
"""

from __future__ import annotations

from typing import Any


def train_in_task(shipped: list[str], cfg_pickle: bytes, force: bool) -> dict[str, Any]:
    import os
    import pickle
    import sys

    work_dir = os.environ.get("HOROVOD_SPARK_WORK_DIR", os.getcwd())  # set by Horovod's task service
    for name in shipped:
        path = os.path.join(work_dir, name)
        if os.path.exists(path) and path not in sys.path:
            sys.path.insert(0, path)
    from mpdrec.models.ncf.train import train_on_rank

    return train_on_rank(pickle.loads(cfg_pickle), force)
