#!/usr/bin/env bash
# Reproduces the shipped default style models in muon_ad_ros/models/ with the default distill settings
# (seed 0, 1 torch thread each). The styles train in parallel, one core each; each run is bounded by
# a timeout and logs to out/train_defaults/<style>.log; checkpoints stay in out/train_defaults/<style>/.
# Usage: tools/train_defaults.sh [style ...]   (default: mosaic ihc)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LIMIT=${TRAIN_TIMEOUT:-45m}
styles=("$@")
[ ${#styles[@]} -eq 0 ] && styles=(mosaic ihc)
mkdir -p out/train_defaults
pids=()
for style in "${styles[@]}"; do
  echo "== $style: start $(date -u +%FT%TZ)"
  ( start=$(date +%s)
    timeout "$LIMIT" "$PY" -m muon_ad_ros.cli distill --style "$style" --seed 0 \
      --out "muon_ad_ros/models/$style" --checkpoint-dir "out/train_defaults/$style" \
      > "out/train_defaults/$style.log" 2>&1
    echo "== $style: done in $(( $(date +%s) - start )) s" ) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
