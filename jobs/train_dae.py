"""Stage 5b: train the playlist autoencoder (Mult-DAE) with Horovod; rank 0 writes <paths.run_dir>/dae/
(track_factors, playlist_factors, history.json, history.png): the rank stage's source and feature `dae`.

    horovodrun -np 2 -H localhost:2 --gloo python jobs/train_dae.py --set paths.run_dir=runs/local
    python jobs/train_dae.py --set paths.run_dir=runs/local                          # one process
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.models.dae.train import train_on_rank


def train(args: argparse.Namespace, cfg: Config) -> None:
    summary = train_on_rank(cfg, args.force)
    if summary["rank"] != 0:
        return  # another rank's process: rank 0 reports
    m = summary["manifest"]
    state = "up to date" if m.get("skipped") else f"trained {m['epochs_run']} epochs on {m['ranks']} rank(s)"
    print(
        f"dae: {state}; best epoch {m['best_epoch']}: "
        + "  ".join(f"{k} {v:.4f}" for k, v in m["metrics"].items())
        + f"  (popularity hr@10 {m['popularity']['hr@10']:.4f}); written to {cfg.paths.run_dir}/dae"
    )


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], train))
