"""Write a synthetic Book-Crossing ratings file (BX-Book-Ratings.csv, the real file's format) to `synth_books.out_dir`.

python jobs/synth_books.py --set synth_books.ratings=1149780 --set synth_books.out_dir=data/book_crossing
"""

from __future__ import annotations

import argparse
import sys

from mpdrec.cli import run_job
from mpdrec.config import Config
from mpdrec.synth.books import FILE_NAME, generate_books


def synth(args: argparse.Namespace, cfg: Config) -> None:
    m = generate_books(cfg.synth_books, force=args.force)
    state = "already up to date" if m.get("skipped") else f"written in {m['seconds']}s"
    print(
        f"{cfg.synth_books.out_dir}/{FILE_NAME}: {m['rows']:,} rows ({m['zeros']:,} zeros, {m['bad_rows']} malformed), "
        f"{m['users']:,} users, {m['books']:,} books; {state}"
    )


if __name__ == "__main__":
    sys.exit(run_job(__doc__.splitlines()[0], synth))
