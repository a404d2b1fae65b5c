#!/usr/bin/env bash
# Runs a command with the venv's ROS 2 (pip wheels) and this package's colcon install on the paths.
# Usage: tools/rosenv.sh <command> [args...]
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
export VIRTUAL_ENV=$VENV
# install/tf2_msgs: the vendored TFMessage interface (vendor/tf2_msgs), built by `make build`.
export PATH="$VENV/bin:$here/install/muon_ad_ros/lib/muon_ad_ros:$PATH"
export AMENT_PREFIX_PATH="$here/install/muon_ad_ros:$here/install/tf2_msgs:$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV"
export PYTHONPATH="$here:$here/install/muon_ad_ros/lib/python3.11/site-packages:$here/install/tf2_msgs/lib/python3.11/site-packages${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$here/install/muon_ad_ros/lib:$here/install/tf2_msgs/lib:$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The graph's Fast DDS profile (shared memory large enough for whole frames, plus UDPv4): its images
# reach default ROS 2 processes without loss, and those processes need no variable (docs/transport.md).
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$here/config/fastdds.xml}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
exec "$@"
