#!/usr/bin/env bash
# Build what a cluster needs to run mpdrec's jobs, into OUT (default dist/):
#   mpdrec-<version>-py3-none-any.whl  the package (conf/ inside, as mpdrec/conf)
#   mpdrec.zip                         the same package for `--py-files`: how every job gets mpdrec
#   mpdrec-env.tar.gz                  a packed virtual environment (venv-pack) with every pinned
#                                      dependency, Horovod included, but not mpdrec itself, for
#                                      `--archives` on clusters without them; skipped with --no-env.
#                                      Rebuilt only when setup.py's pins change: a code change needs
#                                      a new zip (seconds), not a new environment (hundreds of MB)
#   jobs/, conf/                       the entry points spark-submit runs, and the profiles
#
#   scripts/package.sh                       # everything, into dist/
#   scripts/package.sh --out /tmp/d --no-env # wheel, zip, jobs and conf only (seconds)
#   scripts/package.sh --compress-level 1    # a bigger environment archive, packed faster
#
# The packed environment has a copy of this machine's python binary but not its standard library:
# the nodes need the same Python (3.11) at the same path, and the same OS and CPU architecture
# (build it on an image like the nodes').
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/dist"
WITH_ENV=1
COMPRESS_LEVEL=4
while (( $# )); do
  case "$1" in
    --out) OUT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --no-env) WITH_ENV=0; shift ;;
    --compress-level) COMPRESS_LEVEL="$2"; shift 2 ;;
    *) echo "package.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$COMPRESS_LEVEL" =~ ^[0-9]$ ]] || { echo "package.sh: --compress-level must be 0..9" >&2; exit 2; }

bash "$ROOT/scripts/bootstrap_venv.sh"
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
mkdir -p "$OUT"
rm -rf "$OUT/jobs" "$OUT/conf" "$OUT"/mpdrec-*.whl "$OUT/mpdrec.zip"

echo "[package] wheel"
# setuptools builds in $ROOT/build and never removes a module deleted or moved since: a checkout that
# built before would ship the stale module (it did: models/data.py after it moved to lists/)
rm -rf "$ROOT/build"
python -m pip wheel -q --no-deps --no-build-isolation "$ROOT" -w "$OUT"
WHEEL="$(ls "$OUT"/mpdrec-*-py3-none-any.whl)"
python - "$WHEEL" "$OUT/mpdrec.zip" <<'PY'
"""The wheel's package files without its metadata, with fixed timestamps: the same code gives the same zip."""
import sys, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
    for info in sorted(src.infolist(), key=lambda i: i.filename):
        if ".dist-info/" not in info.filename:
            dst.writestr(zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0)), src.read(info))
PY
cp -r "$ROOT/jobs" "$ROOT/conf" "$OUT/"
rm -rf "$OUT/jobs/__pycache__"

# tar.gz only: Spark 3.5 unpacks .tar.gz with the system's tar, which keeps the executable bits;
# its Java unpacking of .tar and .zip drops them (SPARK-38632, SPARK-37677), and bin/python could not run.
ENV_ARCHIVE="$OUT/mpdrec-env.tar.gz"
ENV_STAMP="$OUT/.mpdrec-env.stamp"
env_key="$( (cat "$ROOT/setup.py" "$ROOT/scripts/install_horovod.sh"; python --version; echo "$COMPRESS_LEVEL") | sha256sum | cut -c1-16)"
if (( WITH_ENV )) && [[ -f "$ENV_ARCHIVE" && -f "$ENV_STAMP" && "$(cat "$ENV_STAMP")" == "$env_key" ]]; then
  echo "[package] environment: $ENV_ARCHIVE is up to date with setup.py"
elif (( WITH_ENV )); then
  rm -f "$ENV_ARCHIVE" "$ENV_STAMP"
  ENV_DIR="$(mktemp -d)/mpdrec-env"
  trap 'rm -rf "$(dirname "$ENV_DIR")"' EXIT
  echo "[package] environment: $(python --version) venv with the pinned dependencies"
  python -m venv --copies "$ENV_DIR"  # bin/python a copy, not a link out of the archive (Spark's Java unpacking refuses those)
  "$ENV_DIR/bin/python" -m pip install -q "pip==24.2" "setuptools==75.1.0" "wheel==0.44.0"
  "$ENV_DIR/bin/python" -m pip install -q "$WHEEL"
  echo "[package] environment: horovod (pip's cached build when there is one)"
  bash "$ROOT/scripts/install_horovod.sh" "$ENV_DIR/bin/python" "$WHEEL[horovod]"
  "$ENV_DIR/bin/python" -m pip uninstall -q -y mpdrec  # the code travels in mpdrec.zip
  echo "[package] packing the environment (venv-pack, gzip level $COMPRESS_LEVEL)"
  venv-pack -q -p "$ENV_DIR" -o "$ENV_ARCHIVE" --compress-level "$COMPRESS_LEVEL"
  echo "$env_key" > "$ENV_STAMP"
fi
echo "[package] ready in $OUT:"
(cd "$OUT" && du -sh -- * | sed 's/^/  /')
