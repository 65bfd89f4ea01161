#!/usr/bin/env bash
# Run mpdrec's stages (or all of them) on EMR as `aws emr add-steps`, with the artifacts of
# scripts/package.sh (dist/). The logic and every option: lib/mpdrec/submit.py (--help).
#   scripts/package.sh
#   scripts/submit_emr.sh --cluster-id j-XXXX --staging s3://B/mpdrec \
#     --run-dir s3://B/runs/r1 --mpd s3://B/mpd/data --challenge s3://B/challenge_set.json --dry-run
# Needs only python3 (standard library); --dry-run prints the exact commands and runs nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m mpdrec.submit emr "$@"
