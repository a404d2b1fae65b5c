#!/usr/bin/env bash
# Reproduces the shipped default style models in muon_ad_ros/models/ with the default distill settings.
# Each run is bounded (timeout) and logs to out/train_defaults/<style>.log; checkpoints stay in out/.
# Usage: tools/train_defaults.sh [style ...]   (default: mosaic ihc)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LIMIT=${TRAIN_TIMEOUT:-45m}
styles=("$@")
[ ${#styles[@]} -eq 0 ] && styles=(mosaic ihc)
mkdir -p out/train_defaults
for style in "${styles[@]}"; do
  echo "== $style: $(date -u +%FT%TZ)"
  start=$(date +%s)
  timeout "$LIMIT" "$PY" -m muon_ad_ros.cli distill --style "$style" --seed 0 \
    --out "muon_ad_ros/models/$style" --checkpoint-dir "out/train_defaults/$style" \
    > "out/train_defaults/$style.log" 2>&1
  echo "== $style done in $(( $(date +%s) - start )) s"
done
