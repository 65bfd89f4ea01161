"""The Dice playlist-neighbour study over <paths.run_dir>/ingest (MPD playlists): the hidden first track's
hit rate among the recommendations of the most similar bank playlists, beside popularity; <paths.run_dir>/dice.

    python jobs/ingest_mpd.py --set paths.mpd=../shared/real-sample/data --set paths.run_dir=runs/real
    python jobs/playlist_neighbours.py --set paths.run_dir=runs/real
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.spark import build_spark
from mpdrec.studies.dice import run_dice
from mpdrec.upstream import INGEST, check_local_upstream


def study(args: argparse.Namespace, cfg: Config) -> None:
    check_local_upstream(cfg, [INGEST])
    spark = build_spark(cfg.spark, "mpdrec-playlist-neighbours")
    m = run_dice(spark, cfg, force=args.force)
    for name, h in m["hit_rate"].items():
        print(
            f"{name:<11} hit rate {h['mean']:.4f} [{h['low']:.4f}, {h['high']:.4f}] "
            f"on {m['held_out']:,} held-out playlists"
        )
    print(f"(the study: {m['study_hit_rate']}); report in {cfg.paths.run_dir}/dice/report.md")


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], study))
