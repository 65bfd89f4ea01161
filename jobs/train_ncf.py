"""Stage 5: train an NCF model (gmf | mlp | neumf | nncf) with Horovod; rank 0 writes
<paths.run_dir>/ncf/<model>/ (model.keras, embeddings/, history.json, history.png).

    horovodrun -np 2 -H localhost:2 --gloo python jobs/train_ncf.py --set paths.run_dir=runs/local
    spark-submit jobs/train_ncf.py --set ncf.launcher=spark --set ncf.num_proc=4   # on Spark executors
    python jobs/train_ncf.py --set ncf.model=gmf                                     # one process
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.models.ncf.launch import launch


def train(args: argparse.Namespace, cfg: Config) -> None:
    rank0 = [s for s in launch(cfg, args.force) if s["rank"] == 0]
    if not rank0:
        return  # another rank's process under horovodrun: rank 0 reports
    m = rank0[0]["manifest"]
    state = "up to date" if m.get("skipped") else f"trained {m['epochs_run']} epochs on {m['ranks']} rank(s)"
    pretrained_start = m.get("start") and not m["best_epoch"]
    best = f"best epoch {m['best_epoch']}" + (" (the pretrained start)" if pretrained_start else "")
    print(
        f"ncf {m['model']}: {state}; {best}: "
        + "  ".join(f"{k} {v:.4f}" for k, v in m["metrics"].items())
        + f"  (popularity hr@10 {m['popularity']['hr@10']:.4f}); written to {cfg.paths.run_dir}/ncf/{m['model']}"
    )


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], train))
