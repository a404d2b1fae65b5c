#!/usr/bin/env bash
# Idempotent environment for `make test` / `make demo` on a fresh Debian machine without ROS:
# a venv with pinned wheels (real rclpy + Fast DDS from PyPI), libusb for pyrealsense2, and the
# CMake path fix-up the ROS wheels need for colcon. Re-running with nothing changed takes ~1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.env-stamp"
want=$(cat requirements.txt requirements-build.txt tools/env.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  echo "env: installing Debian's libusb-1.0-0 (pyrealsense2 needs it)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q libusb-1.0-0 >/dev/null; }
fi

# OpenCV's sample photographs and videos (Debian's opencv-doc): the training and held-out content set
# (muon_ad_ros/data/SOURCES.md), read from the package's files, never downloaded at run time.
if [ ! -f /usr/share/doc/opencv-doc/examples/data/starry_night.jpg ]; then
  echo "env: installing Debian's opencv-doc (content photographs and the starry_night style)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y -q --no-install-recommends opencv-doc >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends opencv-doc >/dev/null; }
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt -r requirements-build.txt

# The ROS wheels' CMake configs name their build machine's Python paths; point them here. CMake
# refuses include directories inside the source tree, and the venv lives there, so numpy's headers
# are reached through a link outside it.
inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
npinc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
# One link per venv (several checkouts may share the cache); the Makefile reads its path.
cache=${MUON_AD_ROS_CACHE:-$HOME/.cache/muon_ad_ros}/venvs/$(realpath "$VENV" | sha256sum | cut -c1-12)
mkdir -p "$cache"
ln -sfn "$npinc" "$cache/numpy-include"
echo "$cache/numpy-include" > "$VENV/.numpy-include-path"
{ grep -rlE '/opt/python/cp311-cp311|numpy(/_core/include|-include)' "$VENV"/share/*/cmake/ 2>/dev/null || true; } | while read -r f; do
  sed -i -E -e "s#/opt/python/cp311-cp311/include/python3.11#$inc#g" \
            -e "s#[^\" ;]*numpy(/_core/include|-include)#$cache/numpy-include#g" "$f"
done
echo "$want" > "$stamp"
echo "env: $VENV ready"
