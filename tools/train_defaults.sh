#!/usr/bin/env bash
# Reproduces the shipped style models in muon_ad_ros/models/ (seed 0, 1 torch thread; content: the
# training split of muon_ad_ros/train/data.py, which tools/env.sh installs). The styles train one after
# another; each run is bounded by a timeout and logs to out/train_defaults/<style>.log; checkpoints
# (and before_order.pt for `muon-ad bench order`) stay in out/train_defaults/<style>/.
#   starry_night: distilled with the recipe below, guided by the teacher's features (the default of
#                 `muon-ad distill`); its command.txt and training.json record the run (with out/ paths)
#   ihc:          distilled with the recipe below (no teacher)
#   mosaic:       the weights of commit d47f60a (`git checkout d47f60a && tools/train_defaults.sh mosaic`
#                 there), re-exported with edge padding; here this script only repeats that export
# ihc and mosaic were distilled with attention blocks (the commit in each training.json) and converted to
# global-context blocks by `muon-ad export` (the same value and output weights; their attention was
# uniform, see model/student.py). Distilling them here trains context blocks from the start: the same
# recipe, not the same weights. About 7 min per style on this 2-core CPU.
# Usage: tools/train_defaults.sh [style ...]   (default: ihc starry_night)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LIMIT=${TRAIN_TIMEOUT:-45m}
declare -A RECIPE=(
  [ihc]="--iters 400 --teacher-feature-weight 0 --stats-weight 3 --order l1"
  [starry_night]="--iters 800 --stats-weight 3"
)
styles=("$@")
[ ${#styles[@]} -eq 0 ] && styles=(ihc starry_night)
mkdir -p out/train_defaults
status=0
for style in "${styles[@]}"; do
  echo "== $style: start $(date -u +%FT%TZ)"
  start=$(date +%s)
  if [ "$style" = mosaic ]; then
    "$PY" -m muon_ad_ros.cli export --checkpoint muon_ad_ros/models/mosaic/student.pt \
      --out muon_ad_ros/models/mosaic --padding replicate --style-image muon_ad_ros/models/mosaic/style.png \
      --style-name mosaic > out/train_defaults/mosaic.log 2>&1 || status=1
  else
    # shellcheck disable=SC2086
    timeout "$LIMIT" "$PY" -m muon_ad_ros.cli distill --style "$style" --seed 0 ${RECIPE[$style]:-} \
      --out "muon_ad_ros/models/$style" --checkpoint-dir "out/train_defaults/$style" \
      > "out/train_defaults/$style.log" 2>&1 || status=1
  fi
  echo "== $style: done in $(( $(date +%s) - start )) s"
done
exit $status
