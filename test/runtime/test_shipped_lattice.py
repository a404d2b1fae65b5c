"""Every shipped bundle, at every level, paints without a fixed grid: the pattern repeated in every 8x8 cell
of the frame (metrics.lattice_rms) stays near the photographs' own on the eight held-out photographs.

The nearest-upsampling students drew one over every frame (5.8-8.0/255 RMS at retention 1.0, a dot or brick
grid on flat walls and fur); the photographs' own is 0.2 (docs/method.md, section 4). The 8-px period only:
the 16-px check pattern starry_night still lays on large flat surfaces is a known gap (docs/method.md).
"""
import json

import numpy as np
import onnxruntime as ort
import pytest

from muon_ad_ros.model.bundle import MODELS_ROOT
from muon_ad_ros.train import data, metrics

BUNDLES = sorted(p.parent for p in MODELS_ROOT.glob("*/model.json"))
MAX_RMS = 2.5   # 0-255; the shipped bundles measure 0.5-1.3, the grid-painting ones 4.1-8.0 (every level)


@pytest.fixture(scope="module")
def frames():
    return [data.fit_frame(p, 640, 480) for p in data.content_images(split="eval")]


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_no_fixed_grid_at_any_level(bundle, frames):
    meta = json.loads((bundle / "model.json").read_text())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    for level in meta["levels"]:
        sess = ort.InferenceSession(str(bundle / level["onnx"]), opts, providers=["CPUExecutionProvider"])
        rms = []
        for x in frames:
            y = sess.run(None, {"image": x.transpose(2, 0, 1)[None].astype(np.float32) / 255})[0][0]
            rms.append(metrics.lattice_rms((y.transpose(1, 2, 0).clip(0, 1) * 255 + 0.5).astype(np.uint8)))
        assert np.mean(rms) <= MAX_RMS, f"{bundle.name} r={level['retention']}: lattice {np.mean(rms):.2f}/255"
