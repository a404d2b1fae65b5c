"""Every shipped bundle, at every level and two input sizes, draws no frame along the image border.

Measured on what the style node publishes (the ONNX Runtime backend at the bundle's input scale) with
metrics.border_gap: the gap between the mean colour of the outer
4-px strip and of the strip 8-16 px in, compared with the same gap of the input photo, on three
scikit-image photographs and the eight held-out photographs (opencv-doc, installed by tools/env.sh). A
zero-padded model reached 76/255 where the photo's own gap was 3; the held-out photographs catch a dark band
inside the right edge that the three scikit-image ones miss (an ihc model: 20.5 on them, 6.4 on the three).
"""
import numpy as np
import pytest

from muon_ad_ros.model.bundle import MODELS_ROOT
from muon_ad_ros.runtime.style import open_style_backend
from muon_ad_ros.train import data, metrics

BUNDLES = sorted(p.parent for p in MODELS_ROOT.glob("*/model.json"))
# Known: at its input scale 0.75 mosaic reaches 30.2 at 328x248 (r=1.0, inside the right edge of
# rubberwhale1.png) and 19.2 at 640x480 (r=0.7, building.jpg); 37.7 and 15.1 at scale 1.0. Its outlines follow
# the content into the frame's edge; the border-consistency fine-tunes brought each start down (34.3 -> 21.9,
# 45.2 -> 37.7) and the steps between them raised it again (docs/method.md, shipped styles). strict: the test
# fails as soon as it passes, so the mark cannot outlive the defect.
KNOWN = {"mosaic": "a 30.2/255 band inside the right edge of held-out photos at 328x248 (docs/method.md)"}
# a stylized border may differ from the photo's a little (the style's own contrast); a frame does not
MAX_EXCESS = 16.0
SIZES = ((640, 480), (328, 248))  # the camera frame, and a size whose 1/32 grid does not divide it


@pytest.fixture(scope="module")
def photos():
    return ([data.skimage_image(n) for n in ("chelsea", "hubble_deep_field", "astronaut")]
            + data.content_images(split="eval"))


@pytest.mark.parametrize("bundle", [pytest.param(b, marks=pytest.mark.xfail(strict=True, reason=KNOWN[b.name]))
                                    if b.name in KNOWN else b for b in BUNDLES], ids=[b.name for b in BUNDLES])
def test_no_border_frame_at_any_level_or_size(bundle, photos):
    backend = open_style_backend("onnxruntime", bundle, threads=1)
    worst = []
    for level in backend.levels:
        for w, h in SIZES:
            for photo in photos:
                x = data.fit_frame(photo, w, h)
                excess = metrics.border_gap(backend.infer(x, level)) - metrics.border_gap(x)
                worst.append((excess, level, f"{w}x{h}"))
    excess, level, size = max(worst)
    assert excess <= MAX_EXCESS, (f"{bundle.name}: border strip gap {excess:.1f}/255 above the photo's at "
                                  f"retention {level}, {size}")


def test_border_gap_sees_a_frame():
    img = np.full((96, 128, 3), 120, np.uint8)
    assert metrics.border_gap(img) == 0
    img[:3] = 200  # a bright line along the top edge
    assert metrics.border_gap(img) > 50
