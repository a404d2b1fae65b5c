#!/usr/bin/env bash
# Reproduces the shipped style models in muon_ad_ros/models/ (seed 0, 1 torch thread; content: the
# training split of muon_ad_ros/train/data.py, which tools/env.sh installs). The styles train one after
# another; each run is bounded by a timeout and logs to out/train_defaults/<style>.log; checkpoints
# (and before_order.pt for `muon-ad bench order`) stay in out/train_defaults/<style>/.
#   starry_night, ihc: distilled with the recipes below, guided by the teacher's features, on a GPU
#                 (NVIDIA H200, --device cuda, 2500 steps in about 6 min with seven runs sharing the GPU);
#                 their command.txt and training.json record the runs. DEVICE=cpu (or no GPU: the
#                 default auto picks the CPU) runs the same recipe in about 22 min per style on this 2-core
#                 CPU; CUDA and CPU kernels round differently, so it gives close, not identical, weights
#                 (starry_night on the CPU: held-out Gram 61.5 vs 55.8, multistyle26 0.00190 vs 0.00201,
#                 but a border gap of 19.5/255 that fails the border test: check a retrained model with
#                 `pytest test/runtime/test_shipped_borders.py` before shipping it).
#   mosaic:       the weights of commit d47f60a (`git checkout d47f60a && tools/train_defaults.sh mosaic`
#                 there), re-exported with edge padding; here this script only repeats that export. It was
#                 distilled with attention blocks and converted to global-context blocks by `muon-ad export`
#                 (the same value and output weights; its attention was uniform, see model/student.py).
# Usage: tools/train_defaults.sh [style ...]   (default: ihc starry_night)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LIMIT=${TRAIN_TIMEOUT:-45m}
DEVICE=${DEVICE:-auto}
declare -A RECIPE=(
  [ihc]="--iters 2500 --stats-weight 3 --teacher-feature-weight 3"
  [starry_night]="--iters 2500 --stats-weight 3"
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
    timeout "$LIMIT" "$PY" -m muon_ad_ros.cli distill --style "$style" --seed 0 ${RECIPE[$style]:-} --device "$DEVICE" \
      --out "muon_ad_ros/models/$style" --checkpoint-dir "out/train_defaults/$style" \
      > "out/train_defaults/$style.log" 2>&1 || status=1
  fi
  echo "== $style: done in $(( $(date +%s) - start )) s"
done
exit $status
