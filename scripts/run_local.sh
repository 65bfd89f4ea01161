#!/usr/bin/env bash
# The main job, on this machine: synthetic MPD (unless MPD_DIR is given) -> ingest -> validation
# challenge + interactions -> negatives -> ALS -> NCF (horovodrun -np 2) -> rank (every source and
# their learned blend, with and without the NCF score) -> evaluate; prints the metrics table.
#
#   scripts/run_local.sh                                # synthetic MPD, 20 slices, run in runs/local
#   MPD_DIR=/data/mpd/data CHALLENGE=/data/challenge_set.json scripts/run_local.sh
#   scripts/run_local.sh --set synth.num_slices=5       # extra arguments go to every job
#
# Environment: MPD_DIR (real slice files), CHALLENGE (a challenge_set.json), RUN_DIR (outputs,
# default runs/local), SYNTH_DIR (where synthetic slices go, default data/synth), WITH_DAE=1 (train
# the playlist autoencoder too; rank with it by adding dae to rank.models: docs/dae.md).
# Reruns skip every stage whose outputs are up to date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap_venv.sh
# shellcheck disable=SC1091
source .venv/bin/activate

RUN_DIR="${RUN_DIR:-runs/local}"
if [[ -n "${MPD_DIR:-}" ]]; then
  MPD="$MPD_DIR"
  CHALLENGE="${CHALLENGE:-}"
else
  SYNTH_DIR="${SYNTH_DIR:-data/synth}"
  echo "== synth: synthetic MPD in $SYNTH_DIR (set MPD_DIR to use the real one)"
  python jobs/synth_mpd.py --set "synth.out_dir=$SYNTH_DIR" "$@"
  MPD="$SYNTH_DIR"
  CHALLENGE="${CHALLENGE:-$SYNTH_DIR/challenge_set.json}"
fi
echo "== ingest: $MPD -> $RUN_DIR/ingest"
python jobs/ingest_mpd.py --set "paths.mpd=$MPD" --set "paths.challenge=$CHALLENGE" \
  --set "paths.run_dir=$RUN_DIR" "$@"
echo "== build_interactions: validation challenge, ids, interactions"
python jobs/build_interactions.py --set "paths.run_dir=$RUN_DIR" "$@"
echo "== sample_negatives: training positives and the leave-one-out set for the neural models"
python jobs/sample_negatives.py --set "paths.run_dir=$RUN_DIR" "$@"
echo "== train_als: implicit ALS, best grid point by the blend-training challenge's NDCG"
python jobs/train_als.py --set "paths.run_dir=$RUN_DIR" "$@"
echo "== train_ncf: the NCF model of rank.ncf_model on two Horovod ranks (Gloo)"
horovodrun -np 2 -H localhost:2 --gloo python jobs/train_ncf.py --set "paths.run_dir=$RUN_DIR" "$@"
if [[ "${WITH_DAE:-0}" == 1 ]]; then  # with --set 'rank.models=[popularity,title,artist,cooc,als,dae]'
  echo "== train_dae: the playlist autoencoder on two Horovod ranks (Gloo)"
  horovodrun -np 2 -H localhost:2 --gloo python jobs/train_dae.py --set "paths.run_dir=$RUN_DIR" "$@"
fi
echo "== rank: validated submissions per source and for their learned blend (rank/final)"
python jobs/rank_candidates.py --set "paths.run_dir=$RUN_DIR" "$@"
echo "== evaluate: official metrics on the validation challenge"
python jobs/evaluate.py --set "paths.run_dir=$RUN_DIR" "$@"
echo
echo "submissions: $RUN_DIR/rank/final/submission.csv (the blend) and rank/<model>/ (validation challenge)"
if [[ -n "$CHALLENGE" ]]; then
  echo "             $RUN_DIR/rank/<model>/challenge_submission.csv (the challenge set you gave)"
fi
echo "report:      $RUN_DIR/report.md, $RUN_DIR/report.json"
