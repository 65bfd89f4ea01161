#!/usr/bin/env bash
# Run the test suite (creates and fills .venv first if needed). Extra arguments go to pytest:
#   scripts/test.sh                  # default suite (the cluster and fault checks excluded)
#   scripts/test.sh -m cluster       # only the cluster checks (likewise -m faults)
#   scripts/test.sh -m ""            # everything
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap_venv.sh
# shellcheck disable=SC1091
source .venv/bin/activate
exec python -m pytest "$@"
