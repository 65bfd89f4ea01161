#!/usr/bin/env bash
# Run mpdrec's stages (or all of them) on Dataproc as `gcloud dataproc jobs submit pyspark`, with
# the artifacts of scripts/package.sh (dist/). The logic and every option: lib/mpdrec/submit.py (--help).
#   scripts/package.sh
#   scripts/submit_dataproc.sh --cluster C --region europe-west1 --staging gs://B/mpdrec \
#     --run-dir gs://B/runs/r1 --mpd gs://B/mpd/data --challenge gs://B/challenge_set.json --dry-run
# Needs only python3 (standard library); --dry-run prints the exact commands and runs nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m mpdrec.submit dataproc "$@"
