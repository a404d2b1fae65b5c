"""Every shipped bundle, at every level and two input sizes, draws no frame along the image border.

Measured on the real ONNX models with metrics.border_gap: the gap between the mean colour of the outer
4-px strip and of the strip 8-16 px in, compared with the same gap of the input photo. The zero-padded
models shipped before replicate padding reached 76/255 where the photo's own gap was 3.
"""
import json

import numpy as np
import onnxruntime as ort
import pytest

from muon_ad_ros.model.bundle import MODELS_ROOT
from muon_ad_ros.train import data, metrics

BUNDLES = sorted(p.parent for p in MODELS_ROOT.glob("*/model.json"))
# a stylized border may differ from the photo's a little (the style's own contrast); a frame does not
MAX_EXCESS = 16.0
SIZES = ((640, 480), (328, 248))  # the camera frame, and a size whose 1/32 grid does not divide it


@pytest.fixture(scope="module")
def photos():
    # held-out photographs that install with scikit-image (no opencv-doc needed for this test)
    return [data.skimage_image(n) for n in ("chelsea", "hubble_deep_field", "astronaut")]


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_no_border_frame_at_any_level_or_size(bundle, photos):
    meta = json.loads((bundle / "model.json").read_text())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    worst = []
    for level in meta["levels"]:
        sess = ort.InferenceSession(str(bundle / level["onnx"]), opts, providers=["CPUExecutionProvider"])
        for w, h in SIZES:
            for photo in photos:
                x = data.fit_frame(photo, w, h)
                y = sess.run(None, {"image": x.transpose(2, 0, 1)[None].astype(np.float32) / 255})[0][0]
                out = (y.transpose(1, 2, 0).clip(0, 1) * 255 + 0.5).astype(np.uint8)
                excess = metrics.border_gap(out) - metrics.border_gap(x)
                worst.append((excess, level["retention"], f"{w}x{h}"))
    excess, level, size = max(worst)
    assert excess <= MAX_EXCESS, (f"{bundle.name}: border strip gap {excess:.1f}/255 above the photo's at "
                                  f"retention {level}, {size}")


def test_border_gap_sees_a_frame():
    img = np.full((96, 128, 3), 120, np.uint8)
    assert metrics.border_gap(img) == 0
    img[:3] = 200  # a bright line along the top edge
    assert metrics.border_gap(img) > 50
