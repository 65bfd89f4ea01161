#!/usr/bin/env bash
# Create .venv (if missing) and install mpdrec with every pinned dependency, Horovod included.
# Idempotent: a second run with an up-to-date .venv only checks and returns.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MPDREC_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.mpdrec-installed"
want="$(cat "$ROOT/setup.py" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[bootstrap] creating $VENV"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
echo "[bootstrap] installing mpdrec and pinned dependencies (first time: several minutes)"
python -m pip install -q --upgrade "pip==24.2" "setuptools==75.1.0" "wheel==0.44.0"
python -m pip install -q -e "$ROOT[dev]"
if ! python -c "import horovod.tensorflow" 2>/dev/null; then
  echo "[bootstrap] building horovod with TensorFlow + Gloo (about 3 minutes the first time; pip caches the wheel)"
  bash "$ROOT/scripts/install_horovod.sh" python -e "$ROOT[horovod]"
fi
echo "$want" > "$STAMP"
echo "[bootstrap] ready: $VENV"
