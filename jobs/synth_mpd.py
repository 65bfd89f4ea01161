"""Stage 0: write a synthetic MPD (slice files + challenge_set.json) to `synth.out_dir`.

python jobs/synth_mpd.py --set synth.num_slices=10 --set synth.out_dir=data/mpd
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.synth.generate import format_stats, generate


def synth(args: argparse.Namespace, cfg: Config) -> None:
    manifest = generate(cfg.synth, force=args.force)
    state = "already up to date" if manifest.get("skipped") else f"written in {manifest['seconds']}s"
    print(f"synthetic MPD in {cfg.synth.out_dir}: {manifest['files']['slices']} slices, {state}")
    print(format_stats(manifest["stats"]))


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], synth))
