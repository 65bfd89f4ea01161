#!/usr/bin/env bash
# Lint, format and type checks, as CI runs them before the tests (configured in pyproject.toml):
#   scripts/lint.sh            # ruff check, ruff format --check, mypy
#   scripts/lint.sh --fix      # let ruff fix what it can and format the code first
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap_venv.sh
# shellcheck disable=SC1091
source .venv/bin/activate
PATHS=(lib jobs scripts tests)
if [[ "${1:-}" == "--fix" ]]; then
  ruff check --fix "${PATHS[@]}"
  ruff format "${PATHS[@]}"
fi
ruff check "${PATHS[@]}"
ruff format --check "${PATHS[@]}"
mypy
