"""Start NCF training the configured way: in this process as one Horovod rank (under `horovodrun`,
or alone), or as `ncf.num_proc` ranks in Spark tasks through `horovod.spark.run`. Both run the same
function, `train_on_rank` (through `spark_task.train_in_task`, which finds mpdrec in a task that only
has it from `--py-files`)."""

from __future__ import annotations

import os
import pickle
from typing import Any

from mpdrec.config import Config
from mpdrec.errors import ConfigError
from mpdrec.models.ncf import spark_task
from mpdrec.models.ncf.train import train_on_rank


def launch(cfg: Config, force: bool = False) -> list[dict[str, Any]]:
    """The summaries (rank, size, weights digest, rank 0: the stage manifest) of the ranks this process
    knows: all of them with the spark launcher, its own under horovodrun."""
    if cfg.ncf.launcher == "spark":
        import cloudpickle  # Horovod's serializer (a Horovod dependency)
        import horovod.spark

        from mpdrec.spark import build_spark

        spark = build_spark(cfg.spark, f"mpdrec-train-ncf-{cfg.ncf.model}")
        sc = spark.sparkContext
        if str(sc.master).startswith("local") and cfg.ncf.num_proc > sc.defaultParallelism:  # a cluster may grow
            raise ConfigError(
                f"config key 'ncf.num_proc': {cfg.ncf.num_proc} ranks need as many Spark task "
                f"slots; {sc.master} has {sc.defaultParallelism}"
            )
        sc.setJobDescription(f"train_ncf: {cfg.ncf.model} on {cfg.ncf.num_proc} Horovod ranks")
        shipped = [os.path.basename(f) for f in sc.getConf().get("spark.submit.pyFiles", "").split(",") if f]
        cloudpickle.register_pickle_by_value(spark_task)
        try:
            return horovod.spark.run(
                spark_task.train_in_task,
                args=(shipped, pickle.dumps(cfg), force),
                num_proc=cfg.ncf.num_proc,
                use_gloo=True,
            )
        finally:
            cloudpickle.unregister_pickle_by_value(spark_task)
    return [train_on_rank(cfg, force)]
