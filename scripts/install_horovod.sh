#!/usr/bin/env bash
# Install the pinned Horovod into the environment of PYTHON (first argument), compiled against the
# TensorFlow already installed there, with Gloo and without MPI. Horovod must be built without
# build isolation, after TensorFlow; the first build takes about 3 minutes, then pip's wheel cache
# serves it. Extra arguments are what to install, default: this checkout's `.[horovod]` extra.
#   scripts/install_horovod.sh .venv/bin/python -e .[horovod]
#   scripts/install_horovod.sh /tmp/env/bin/python "dist/mpdrec-0.1.0-py3-none-any.whl[horovod]"
# GPU clusters: set HOROVOD_GPU_OPERATIONS=NCCL (and have CUDA + NCCL) before running this.
set -euo pipefail
PYTHON="$1"; shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
(( $# )) || set -- "$ROOT[horovod]"
HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
  "$PYTHON" -m pip install -q --no-build-isolation "$@"
"$PYTHON" - <<'PY'
import horovod.tensorflow as hvd
assert hvd.gloo_built(), "horovod was built without Gloo"
PY
