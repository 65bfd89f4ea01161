"""Stage 6: rank the validation challenge (and the real one, when given) with every model in
`rank.models` and with their learned blend; write validated submissions under
<paths.run_dir>/rank/<model>/ and <paths.run_dir>/rank/final/.

    python jobs/rank_candidates.py --set paths.run_dir=runs/local
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.rank.stage import rank_upstream, run_rank
from mpdrec.spark import build_spark
from mpdrec.upstream import check_local_upstream


def rank(args: argparse.Namespace, cfg: Config) -> None:
    check_local_upstream(cfg, rank_upstream(cfg))
    spark = build_spark(cfg.spark, "mpdrec-rank")
    manifest = run_rank(spark, cfg, force=args.force)
    for challenge in ("submission", "challenge_submission"):
        for model, info in manifest.get(challenge, {}).get("models", {}).items():
            print(f"{model:<12} {cfg.paths.run_dir}/{info['file']} ({info['playlists']} playlists, validated)")
    recall = manifest["submission"]["candidates"]["recall"]
    print(
        "candidate recall (hidden tracks reachable, validation playlists): "
        + "  ".join(f"{k} {v:.3f}" for k, v in recall.items())
    )
    blend = manifest["blend"]
    print(f"blend: {blend['method']}" + (f" ({blend['reason']})" if "reason" in blend else ""))


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], rank))
