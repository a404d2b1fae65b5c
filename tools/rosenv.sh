#!/usr/bin/env bash
# Runs a command with a ROS 2 (the venv's pip wheels, or the sourced install tools/env.sh found), this package's
# colcon install and the graph's transport profile on the environment.
# Usage: [DISTRO=jazzy] tools/rosenv.sh <command> [args...]
here=$(cd "$(dirname "$0")/.." && pwd)
DISTRO=${DISTRO:-kilted}
VENV=${VENV:-$here/.venv/$DISTRO}
INSTALL=${ROS_INSTALL:-$here/install/$DISTRO}
export VIRTUAL_ENV=$VENV
pyver=$("$VENV/bin/python" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null \
  || echo python3)
# install/<distro>/tf2_msgs, vision_msgs: the vendored interfaces (vendor/), built by `make build` where the
# ROS 2 install has none.
export PATH="$VENV/bin:$INSTALL/muon_ad_ros/lib/muon_ad_ros:$PATH"
export AMENT_PREFIX_PATH="$INSTALL/muon_ad_ros:$INSTALL/tf2_msgs:$INSTALL/vision_msgs:$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export PYTHONPATH="$here:$INSTALL/muon_ad_ros/lib/$pyver/site-packages:$INSTALL/tf2_msgs/lib/$pyver/site-packages:$INSTALL/vision_msgs/lib/$pyver/site-packages${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$INSTALL/muon_ad_ros/lib:$INSTALL/tf2_msgs/lib:$INSTALL/vision_msgs/lib:$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The graph's Fast DDS profile (shared memory large enough for whole frames, plus UDPv4), under the variable
# name the installed Fast DDS reads (docs/transport.md): its images reach default ROS 2 processes without loss,
# and those processes need no variable.
exports=$("$VENV/bin/python" -m muon_ad_ros.distro env "$here/config/fastdds.xml") || exit 1
eval "$exports"
exec "$@"
