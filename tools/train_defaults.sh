#!/usr/bin/env bash
# Reproduces the shipped style models in muon_ad_ros/models/ (seed 0, 1 torch thread; content: the
# training split of muon_ad_ros/train/data.py, which tools/env.sh installs). The styles train one after
# another; each run is bounded by a timeout and logs to out/train_defaults/<style>.log; checkpoints
# (and before_order.pt for `muon-ad bench order`) stay in out/train_defaults/<style>/.
#   starry_night, ihc: distilled with the recipes below, guided by the teacher's features, on a GPU
#                 (NVIDIA H200, --device cuda: starry_night 2500 steps in about 6 min with seven runs sharing
#                 the GPU, ihc 1500 steps with the half-resolution stage in 3 min with five); their
#                 command.txt and training.json record the runs. DEVICE=cpu (or no GPU: the default auto
#                 picks the CPU) runs the same recipe in about 22 min per 2500 steps on this 2-core CPU; CUDA
#                 and CPU kernels round differently, so it gives close, not identical, weights
#                 (starry_night on the CPU: held-out Gram 61.5 vs 55.8, multistyle26 0.00190 vs 0.00201,
#                 but a border gap of 19.5/255 that fails the border test: check a retrained model with
#                 `pytest test/runtime/test_shipped_borders.py` before shipping it).
#   mosaic:       two runs: the GPU recipe below (1500 steps), then a 300-step fine-tune of its weights with
#                 the border-consistency term (the second recipe, on the CPU in about 14 min).
# Usage: tools/train_defaults.sh [style ...]   (default: ihc starry_night mosaic)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LIMIT=${TRAIN_TIMEOUT:-45m}
DEVICE=${DEVICE:-auto}
declare -A RECIPE=(
  [ihc]="--iters 1500 --stats-weight 3 --teacher-feature-weight 3 --half-width 16 --tv-weight 3"
  [starry_night]="--iters 2500 --stats-weight 3"
  [mosaic]="--iters 1500 --stats-weight 3 --batch 8 --crop 256 --half-width 16 --tv-weight 3"
)
# mosaic's second run, from the first one's weights
MOSAIC_BORDER="--iters 300 --lr 0.001 --batch 4 --crop 256 --image-pad 48 --border-weight 100 --stats-weight 3
  --half-width 16 --tv-weight 3"
styles=("$@")
[ ${#styles[@]} -eq 0 ] && styles=(ihc starry_night mosaic)
mkdir -p out/train_defaults
status=0
for style in "${styles[@]}"; do
  echo "== $style: start $(date -u +%FT%TZ)"
  start=$(date +%s)
  out="muon_ad_ros/models/$style"
  [ "$style" = mosaic ] && out="out/train_defaults/mosaic_start"
  # shellcheck disable=SC2086
  timeout "$LIMIT" "$PY" -m muon_ad_ros.cli distill --style "$style" --seed 0 ${RECIPE[$style]:-} --device "$DEVICE" \
    --out "$out" --checkpoint-dir "out/train_defaults/$style" > "out/train_defaults/$style.log" 2>&1 || status=1
  if [ "$style" = mosaic ] && [ -f "$out/student.pt" ]; then
    # shellcheck disable=SC2086
    timeout "$LIMIT" "$PY" -m muon_ad_ros.cli distill --style mosaic --seed 0 --init "$out/student.pt" $MOSAIC_BORDER \
      --threads 1 --device "$DEVICE" --out muon_ad_ros/models/mosaic --checkpoint-dir out/train_defaults/mosaic_border \
      > out/train_defaults/mosaic_border.log 2>&1 || status=1
  fi
  echo "== $style: done in $(( $(date +%s) - start )) s"
done
exit $status
