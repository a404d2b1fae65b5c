"""YOLO decoding, letterbox mapping and NMS against hand-computed boxes, for each supported ONNX
output layout, through real onnxruntime sessions of small models made with onnx.helper."""
from __future__ import annotations

import numpy as np
import pytest

from muon_ad_ros.detect import DetectorConfig, Filters, ModelError, make_detector
from muon_ad_ros.detect.boxes import letterbox, nms, resolve_layout, unletterbox
from muon_ad_ros.detect.synthetic import fixed_output_model

# A 128x64 (w x h) camera image letterboxed into a 64x64 network input: scale 0.5, 16 rows of
# padding above, so network (x, y) maps to image (2x, 2(y - 16)).
IMAGE = np.zeros((64, 128, 3), np.uint8)


def boxes_of(detector, image=IMAGE):
    return [(round(b.x_min, 3), round(b.y_min, 3), round(b.x_max, 3), round(b.y_max, 3), round(b.score, 3),
             b.class_id, b.class_name) for b in detector.detect(image)]


def onnx_detector(path, **cfg):
    filters = Filters(**{k: cfg.pop(k) for k in list(cfg) if k in Filters.__dataclass_fields__})
    return make_detector(DetectorConfig(backend="onnxruntime", model_path=str(path), filters=filters, **cfg))


@pytest.fixture
def yolov8_model(tmp_path):
    """(1, 4+2, 8): columns [cx, cy, w, h, score class 0, score class 1]."""
    out = np.zeros((1, 6, 8), np.float32)
    out[0, :, 0] = [20, 32, 10, 16, 0.9, 0.1]   # -> class 0, 0.9, net [15,24,25,40] -> image [30,16,50,48]
    out[0, :, 1] = [21, 32, 10, 16, 0.8, 0.0]   # IoU 0.818 with the first, same class: suppressed
    out[0, :, 2] = [21, 32, 10, 16, 0.0, 0.7]   # same box, class 1: kept by per-class NMS, gone by agnostic
    out[0, :, 3] = [50, 46, 8, 8, 0.3, 0.2]     # below the 0.5 threshold
    return fixed_output_model(str(tmp_path / "v8.onnx"), out)


def test_yolov8_layout_decodes_unletterboxes_and_suppresses_per_class(yolov8_model):
    det = onnx_detector(yolov8_model, agnostic_nms_threshold=1.0)
    assert (det.layout, det.class_names, det.size) == ("yolov8", ("class_0", "class_1"), (64, 64))
    assert boxes_of(det) == [(30, 16, 50, 48, 0.9, 0, "class_0"), (32, 16, 52, 48, 0.7, 1, "class_1")]
    det.filters = Filters()    # the class-1 box overlaps the class-0 one by IoU 0.818 > 0.7: one object
    assert boxes_of(det) == [(30, 16, 50, 48, 0.9, 0, "class_0")]


def test_filters_change_results_without_reload(yolov8_model):
    det = onnx_detector(yolov8_model)
    det.filters = Filters(score_threshold=0.5, nms_threshold=0.9, agnostic_nms_threshold=1.0)   # IoU 0.818 < 0.9
    assert [b[4] for b in boxes_of(det)] == [0.9, 0.8, 0.7]
    det.filters = Filters(score_threshold=0.25)
    assert (92, 52, 108, 64, 0.3, 0, "class_0") in boxes_of(det)   # net [46,42,54,50]: y 68 clipped to 64
    det.filters = Filters(class_filter=("class_1",))
    assert [b[5] for b in boxes_of(det)] == [1]
    det.filters = Filters(class_filter=("0",))
    assert [b[5] for b in boxes_of(det)] == [0]
    det.filters = Filters(max_detections=1)
    assert [b[4] for b in boxes_of(det)] == [0.9]
    det.filters = Filters(class_filter=("dog",))
    assert boxes_of(det) == [] and det.unknown_classes() == ["dog"]


def test_yolov5_layout_multiplies_objectness_and_class_score(tmp_path):
    out = np.zeros((1, 10, 7), np.float32)   # (1, N, 5+2)
    out[0, 0] = [20, 32, 10, 16, 0.9, 0.9, 0.1]   # 0.81 class 0
    out[0, 1] = [40, 32, 10, 16, 0.4, 1.0, 0.0]   # objectness 0.4 < 0.5: dropped whatever the class score
    out[0, 2] = [40, 32, 10, 16, 0.9, 0.2, 0.6]   # 0.54 class 1 -> image [70,16,90,48]
    out[0, 3] = [50, 32, 10, 16, 0.9, 0.5, 0.5]   # 0.45: below threshold
    det = onnx_detector(fixed_output_model(str(tmp_path / "v5.onnx"), out))
    assert det.layout == "yolov5" and len(det.class_names) == 2
    assert boxes_of(det) == [(30, 16, 50, 48, 0.81, 0, "class_0"), (70, 16, 90, 48, 0.54, 1, "class_1")]


def test_end2end_layout_keeps_model_nms_and_reads_names_from_metadata(tmp_path):
    out = np.zeros((1, 5, 6), np.float32)   # rows [x1, y1, x2, y2, score, class]
    out[0, 0] = [15, 24, 25, 40, 0.95, 2]
    out[0, 1] = [16, 24, 26, 40, 0.60, 2]   # overlaps the first, same class: the model's NMS kept it, so do we
    out[0, 2] = [0, 0, 4, 4, 0.10, 0]
    names = {0: "person", 1: "bicycle", 2: "car"}
    det = onnx_detector(fixed_output_model(str(tmp_path / "e2e.onnx"), out, names=names, end2end=True))
    assert det.layout == "end2end" and det.class_names == ("person", "bicycle", "car")
    assert boxes_of(det) == [(30, 16, 50, 48, 0.95, 2, "car"), (32, 16, 52, 48, 0.6, 2, "car")]


def test_dynamic_input_uses_input_size_and_metadata_class_names(tmp_path):
    out = np.zeros((1, 7, 16), np.float32)
    out[0, :, 0] = [48, 48, 32, 32, 0.0, 0.0, 0.8]   # 96x96 input: 128x64 image -> scale 0.75, top pad 24
    names = {0: "person", 1: "car", 2: "dog"}
    det = onnx_detector(fixed_output_model(str(tmp_path / "dyn.onnx"), out, dynamic=True, names=names),
                        input_size=96)
    assert det.size == (96, 96)
    [(x1, y1, x2, y2, score, cls, name)] = boxes_of(det)
    assert (score, cls, name) == (0.8, 2, "dog")
    assert [x1, y1, x2, y2] == pytest.approx([32 / 0.75, (32 - 24) / 0.75, 64 / 0.75, (64 - 24) / 0.75], abs=1e-3)


def test_labels_file_must_match_the_class_count(tmp_path, yolov8_model):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("helmet\nvest\n")
    bad.write_text("a\nb\nc\n")
    assert onnx_detector(yolov8_model, labels_path=str(good)).class_names == ("helmet", "vest")
    with pytest.raises(ModelError, match=r"bad\.txt names 3 classes but .*v8\.onnx outputs 2"):
        onnx_detector(yolov8_model, labels_path=str(bad))


def test_fp16_model_and_fp16_conversion(tmp_path, yolov8_model):
    converted = onnx_detector(yolov8_model, precision="fp16", agnostic_nms_threshold=1.0)
    assert converted.precision == "fp16"
    assert [b[:4] + b[5:] for b in boxes_of(converted)] == [(30, 16, 50, 48, 0, "class_0"),
                                                             (32, 16, 52, 48, 1, "class_1")]
    out = np.zeros((1, 6, 8), np.float32)
    out[0, :, 0] = [20, 32, 10, 16, 0.75, 0.0]
    half = fixed_output_model(str(tmp_path / "half.onnx"), out, fp16=True)
    det = onnx_detector(half)
    assert det.precision == "fp16" and boxes_of(det) == [(30, 16, 50, 48, 0.75, 0, "class_0")]
    with pytest.raises(ModelError, match=r"half\.onnx has float16 inputs but precision fp32"):
        onnx_detector(half, precision="fp32")


def test_bad_model_files_raise_errors_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(ModelError, match=r"corrupt\.onnx cannot be loaded"):
        onnx_detector(corrupt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.onnx is empty"):
        onnx_detector(empty)
    with pytest.raises(ModelError, match=r"missing\.onnx does not exist"):
        onnx_detector(tmp_path / "missing.onnx")
    rank2 = fixed_output_model(str(tmp_path / "rank2.onnx"), np.zeros((6, 8), np.float32))
    with pytest.raises(ModelError, match=r"rank 3"):
        onnx_detector(rank2)
    fixed = fixed_output_model(str(tmp_path / "fixed.onnx"), np.zeros((1, 6, 8), np.float32))
    with pytest.raises(ModelError, match=r"fixed\.onnx has a fixed 64x64 input; input_size=96"):
        onnx_detector(fixed, input_size=96)


def test_resolve_layout_from_common_export_shapes():
    assert resolve_layout((1, 84, 8400)) == "yolov8"        # YOLOv8/v11, 80 classes at 640
    assert resolve_layout((1, 25200, 85)) == "yolov5"       # YOLOv5, 80 classes at 640
    assert resolve_layout((1, 300, 6)) == "end2end"         # YOLOv10 / nms=True export
    assert resolve_layout((1, 25200, 6)) == "yolov5"        # one-class YOLOv5, many rows
    assert resolve_layout((1, 300, 6), end2end_hint=False) == "yolov5"
    assert resolve_layout((1, 84, "anchors")) == "yolov8"
    assert resolve_layout((1, "anchors", 85)) == "yolov5"
    assert resolve_layout((1, 84, 8400), "yolov5") == "yolov5"
    with pytest.raises(ModelError, match="rank 3"):
        resolve_layout((1, 84))


def test_nms_iou_threshold_hand_computed():
    xyxy = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)   # IoU(0, 1) = 50/150
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    same = np.zeros(3, np.int64)
    assert nms(xyxy, scores, same, 0.3).tolist() == [0, 2]
    assert nms(xyxy, scores, same, 0.34).tolist() == [0, 1, 2]
    assert nms(xyxy, scores, np.array([0, 1, 0]), 0.3).tolist() == [0, 1, 2]   # different classes never suppress
    assert nms(xyxy[:0], scores[:0], same[:0], 0.5).tolist() == []


def test_letterbox_round_trip():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (480, 640, 3), np.uint8)
    canvas, lb = letterbox(image, (640, 640))
    assert (lb.scale, lb.left, lb.top) == (1.0, 0, 80)
    assert (canvas[:80] == 114).all() and (canvas[80:560] == image).all() and (canvas[560:] == 114).all()
    pts = np.array([[10.0, 20.0, 300.0, 400.0]])
    net = pts * lb.scale + [lb.left, lb.top, lb.left, lb.top]
    np.testing.assert_allclose(unletterbox(net, lb), pts)
