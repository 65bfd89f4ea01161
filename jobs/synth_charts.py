"""Write synthetic Spotify daily top-200 charts (Position,Track Name,Artist,Streams,URL,Date,Region;
one CSV per region) to `synth_charts.out_dir`.

python jobs/synth_charts.py --set synth_charts.countries=50 --set synth_charts.days=365
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.synth.charts import generate_charts


def synth(args: argparse.Namespace, cfg: Config) -> None:
    m = generate_charts(cfg.synth_charts, force=args.force)
    state = "already up to date" if m.get("skipped") else f"written in {m['seconds']}s"
    print(
        f"{cfg.synth_charts.out_dir}: {m['regions']} regions, {m['rows']:,} chart rows ({m['bad_rows']} malformed), "
        f"{m['songs_charted']:,} songs charted; {state}"
    )


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], synth))
