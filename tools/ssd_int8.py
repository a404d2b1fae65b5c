"""Quantizes the bundled SSD MobileNet-v2 COCO to int8 (QDQ, per-channel weights, min-max calibrated
activations) for the CPU: muon_ad_ros/models/coco_ssd/ssd_mobilenet_v2_coco_int8.onnx and
provenance_int8.json. Runs in the project's venv (onnxruntime's quantization tool, pinned in
requirements.txt); nothing is downloaded.

    tools/rosenv.sh python tools/ssd_int8.py [--out FOLDER]

Calibration frames come from the installed sample data and none is one of the labelled frames of
data/coco_eval.json: the bundled street photographs (vtest.avi frames 300, 600, 750) and frames 100,
200, 400, 500 and 700 of vtest.avi, and ten opencv-doc photographs. The box decoding (Postprocessor) stays
float32.
"""
import argparse
import os
import sys
import tempfile

import cv2
import numpy as np
import onnx
import onnxruntime
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from muon_ad_ros.bench.accuracy import video_frames  # noqa: E402
from muon_ad_ros.detect.coco import SSD_INPUT, SSD_ONNX, SSD_ONNX_INT8, sha256_of, write_provenance  # noqa: E402
from muon_ad_ros.train.data import OPENCV_DATA, load_image  # noqa: E402

VTEST_FRAMES = (100, 200, 400, 500, 700)
PHOTOS = ("building.jpg", "home.jpg", "fruits.jpg", "stuff.jpg", "aero1.jpg", "leuvenA.jpg", "rubberwhale1.png",
          "board.jpg", "left.jpg", "squirrel_cls.jpg")
BUNDLED = ("street_300.jpg", "street_600.jpg", "street_750.jpg")


def calibration_frames() -> list[np.ndarray]:
    data = os.path.join(os.path.dirname(SSD_ONNX), "..", "..", "data")
    out = [load_image(os.path.join(data, name)) for name in BUNDLED]
    out += list(video_frames(OPENCV_DATA / "vtest.avi", set(VTEST_FRAMES)).values())
    out += [load_image(OPENCV_DATA / name) for name in PHOTOS]
    return out


def float32_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Returns the model with its float16-stored weights as plain float32 initializers (the quantizer
    reads initializers, not the Cast nodes in front of them)."""
    g = model.graph
    halves = {i.name: i for i in g.initializer if i.name.endswith("_fp16")}
    casts = [n for n in g.node if n.op_type == "Cast" and n.input[0] in halves]
    kept = [i for i in g.initializer if i.name not in halves]
    kept += [numpy_helper.from_array(numpy_helper.to_array(halves[n.input[0]]).astype(np.float32), n.output[0])
             for n in casts]
    nodes = [n for n in g.node if n not in casts]
    del g.initializer[:]
    g.initializer.extend(kept)
    del g.node[:]
    g.node.extend(nodes)
    return model


class Frames(CalibrationDataReader):
    def __init__(self, frames):
        self.it = iter([{"image": cv2.resize(f, (SSD_INPUT, SSD_INPUT), interpolation=cv2.INTER_LINEAR)
                         .transpose(2, 0, 1)[None].astype(np.float32)} for f in frames])

    def get_next(self):
        return next(self.it, None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.dirname(SSD_ONNX))
    a = p.parse_args()
    frames = calibration_frames()
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        plain, pre = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "pre.onnx")
        onnx.save(float32_weights(onnx.load(str(SSD_ONNX))), plain)
        quant_pre_process(plain, pre, skip_symbolic_shape=True)
        decode = [n.name for n in onnx.load(pre).graph.node if n.name.startswith("Postprocessor")]
        out = os.path.join(a.out, SSD_ONNX_INT8.name)
        quantize_static(pre, out, Frames(frames), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=decode)
    provenance = {
        "model": "SSD MobileNet-v2 COCO, int8 (QDQ) for the CPU",
        "source": {"file": f"models/coco_ssd/{SSD_ONNX.name}", "sha256": sha256_of(SSD_ONNX)},
        "quantizer": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "format": "QDQ",
                      "weights": "int8 per channel", "activations": "uint8, min-max calibration",
                      "float32": "the box decoding (Postprocessor nodes)", "script": "tools/ssd_int8.py"},
        "calibration": {"bundled": list(BUNDLED), "vtest.avi frames": list(VTEST_FRAMES),
                        "opencv-doc photographs": list(PHOTOS)},
    }
    write_provenance(out, provenance, "provenance_int8.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
