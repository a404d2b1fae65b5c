"""detection as its own process over real DDS: bundled photographs in, detections (the package's message
and vision_msgs/Detection2DArray) / markers / annotated image out with the source header, from the
default COCO SSD; parameters taking effect; bad model files (the HOG fallback), malformed frames, rate
limit and nice value."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from conftest import diag_values, wait_for
from muon_ad_ros import graph
from muon_ad_ros.detect.labels import COCO
from muon_ad_ros.detect.synthetic import fixed_output_model
from muon_ad_ros.nodes.images import fill_image
from muon_ad_ros.nodes.qos import image_qos

TOPIC = "/test_det/image_raw"
STATUS = "detection: detection"
DATA = Path(__file__).resolve().parents[2] / "muon_ad_ros" / "data"
PEOPLE = json.loads((DATA / "people.json").read_text())


def spec(**params) -> graph.NodeSpec:
    return graph.NodeSpec("detection", "detection", "", {"threads": 1, **params},
                          (("image", TOPIC),))


def photo(name: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB))


def send(probe, pub, image: np.ndarray, encoding: str = "rgb8", frame_id: str = "test_optical_frame") -> tuple:
    header = Header(frame_id=frame_id)
    header.stamp = probe.node.get_clock().now().to_msg()
    pub.publish(fill_image(Image(), image, encoding, header))
    return header.stamp.sec, header.stamp.nanosec


def stamp(msg) -> tuple:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def send_until(probe, pub, out: list, image: np.ndarray, timeout: float = 20.0, info=None, **kw):
    """Returns the first output whose stamp is one of the frames sent (one frame every 0.3 s). `info`:
    (publisher, CameraInfo) sent before every frame, as a camera driver does."""
    sent, deadline = set(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        if info is not None:
            info[0].publish(info[1])
        sent.add(send(probe, pub, image, **kw))
        if wait_for(lambda: [m for m in out if stamp(m) in sent], 0.3):
            return [m for m in out if stamp(m) in sent][0]
    return None


def person_model(tmp_path) -> str:
    """A YOLOv8-layout model with one 'person' at network [200, 100, 300, 400] (640x640 input): on a
    640x480 frame (80 rows of padding) that is image [200, 20, 300, 320], score 0.8."""
    out = np.zeros((1, 4 + 2, 16), np.float32)
    out[0, :, 0] = [250, 250, 100, 300, 0.8, 0.0]
    return fixed_output_model(str(tmp_path / "person.onnx"), out, input_hw=(640, 640),
                              names={0: "person", 1: "robot"})


@pytest.fixture
def node(probe, start_nodes):
    """Starts a detection node; returns (process group, image publisher, collected outputs)."""
    from muon_ad_ros.msg import DetectionArray
    from vision_msgs.msg import Detection2DArray   # vision_msgs of ROS, or vendor/vision_msgs built by make build

    def start(**params):
        g = start_nodes([spec(**params)])
        out = {"det": probe.collect(DetectionArray, "/detections"),
               "vision": probe.collect(Detection2DArray, "/detections/vision_msgs"),
               "markers": probe.collect(MarkerArray, "/detections/markers"),
               "image": probe.collect(Image, "/detections/image_annotated"),
               "diag": probe.collect(DiagnosticArray, "/diagnostics")}
        pub = probe.node.create_publisher(Image, TOPIC, image_qos(10))
        assert wait_for(lambda: probe.node.count_subscribers(TOPIC) > 0, 20), g.log("detection")
        return g, pub, out
    return start


def test_people_in_bundled_photos_detected_with_header_markers_and_annotated_image(probe, node):
    g, pub, out = node()
    info_pub = probe.node.create_publisher(CameraInfo, "/test_det/camera_info", image_qos())
    info = CameraInfo(width=640, height=480, k=[500.0, 0, 320.0, 0, 500.0, 240.0, 0, 0, 1.0])
    # The camera_info subscription matches on its own schedule, not with the image's, and a publisher that
    # counts the subscription may still have its samples dropped until the subscription has matched it in
    # turn. Markers of a frame that arrives before any camera_info use the default field of view; the node
    # says on /diagnostics which intrinsics its last markers used. Frames go with camera_info until then.
    def projected_from_info() -> bool:
        return (diag_values(out["diag"], STATUS) or {}).get("marker_intrinsics") == "camera_info"
    deadline = time.monotonic() + 20
    while not projected_from_info() and time.monotonic() < deadline:
        info_pub.publish(info)
        send(probe, pub, photo("street_600.jpg"))
        wait_for(projected_from_info, 0.5)
    assert projected_from_info(), g.log("detection")
    for name in ("street_600.jpg", "indoor_basketball.jpg"):
        det = send_until(probe, pub, out["det"], photo(name), info=(info_pub, info))
        assert det is not None, g.log("detection")
        assert det.header.frame_id == "test_optical_frame" and det.backend == "onnxruntime"
        centres = [((d.x_min + d.x_max) / 2, (d.y_min + d.y_max) / 2) for d in det.detections
                   if d.class_name == "person"]
        people = PEOPLE[name]["people"]
        found = [p for p in people if any(p[0] <= x <= p[2] and p[1] <= y <= p[3] for x, y in centres)]
        assert len(found) >= 0.6 * len(people), (name, [(d.x_min, d.y_min, d.x_max, d.y_max) for d in det.detections])
        assert all(COCO[d.class_id] == d.class_name and d.score > 0.5 for d in det.detections)

        # the same detections as vision_msgs: centre and size in pixels, the class name as class_id
        assert wait_for(lambda: [m for m in out["vision"] if stamp(m) == stamp(det)], 5), g.log("detection")
        vision = [m for m in out["vision"] if stamp(m) == stamp(det)][0]
        assert vision.header.frame_id == "test_optical_frame" and len(vision.detections) == len(det.detections)
        for v, d in zip(vision.detections, det.detections):
            assert (v.bbox.center.position.x, v.bbox.center.position.y, v.bbox.size_x, v.bbox.size_y) == \
                pytest.approx(((d.x_min + d.x_max) / 2, (d.y_min + d.y_max) / 2, d.x_max - d.x_min, d.y_max - d.y_min))
            [hyp] = v.results
            assert (hyp.hypothesis.class_id, hyp.hypothesis.score) == (d.class_name, pytest.approx(d.score))

        assert wait_for(lambda: [m for m in out["markers"] if stamp(m.markers[0]) == stamp(det)], 5)
        markers = [m for m in out["markers"] if stamp(m.markers[0]) == stamp(det)][0].markers
        assert markers[0].action == Marker.DELETEALL
        rects = [m for m in markers if m.type == Marker.LINE_STRIP]
        labels = [m for m in markers if m.type == Marker.TEXT_VIEW_FACING]
        assert len(rects) == len(labels) == len(det.detections)
        assert all(m.header.frame_id == "test_optical_frame" for m in markers)
        first, corner = det.detections[0], rects[0].points[0]
        # Pinhole projection with the camera_info above, at the default marker_depth of 2 m.
        assert (corner.x, corner.y, corner.z) == pytest.approx(
            ((first.x_min - 320) / 500 * 2, (first.y_min - 240) / 500 * 2, 2.0), abs=1e-4)
        assert len(rects[0].points) == 5 and rects[0].points[0] == rects[0].points[4]

        assert wait_for(lambda: [m for m in out["image"] if stamp(m) == stamp(det)], 5)
        ann = [m for m in out["image"] if stamp(m) == stamp(det)][0]
        assert (ann.height, ann.width, ann.encoding, ann.header.frame_id) == (480, 640, "rgb8", "test_optical_frame")
        drawn = np.frombuffer(ann.data, np.uint8).reshape(480, 640, 3)
        assert (drawn != photo(name)).any(axis=2).sum() > 500   # the boxes and labels
    # bgr8 frames give the same detections as rgb8.
    rgb_boxes = [(d.x_min, d.y_min) for d in det.detections]
    bgr = send_until(probe, pub, out["det"], np.ascontiguousarray(photo("indoor_basketball.jpg")[..., ::-1]),
                     encoding="bgr8")
    assert [(d.x_min, d.y_min) for d in bgr.detections] == rgb_boxes


def test_parameter_changes_take_effect_on_the_next_frame(probe, node, tmp_path):
    g, pub, out = node()
    image = photo("street_750.jpg")
    base = send_until(probe, pub, out["det"], image)
    assert base is not None and len(base.detections) >= 4, g.log("detection")

    assert probe.set_params("/detection", score_threshold=0.8)[0].successful
    strict = send_until(probe, pub, out["det"], image)
    assert 0 < len(strict.detections) < len(base.detections) and min(d.score for d in strict.detections) >= 0.8
    assert probe.set_params("/detection", score_threshold=0.5, max_detections=2)[1].successful
    assert len(send_until(probe, pub, out["det"], image).detections) == 2
    assert probe.set_params("/detection", class_filter=["car"])[0].successful
    assert send_until(probe, pub, out["det"], image).detections == []
    assert probe.set_params("/detection", class_filter=[""], max_detections=100)[0].successful
    # a per-class threshold above every person's score leaves no person
    assert probe.set_params("/detection", class_thresholds=["person:0.99"])[0].successful
    assert all(d.class_name != "person" for d in send_until(probe, pub, out["det"], image).detections)
    assert probe.set_params("/detection", class_thresholds=[""])[0].successful

    # Rejected at set time, with a reason; the old value stays.
    for values, reason in (({"input_size": 100}, "multiple of 32"), ({"dla_core": 0}, "dla_core needs backend tensorrt"),
                           ({"class_thresholds": ["person"]}, "not 'class:score'"),
                           ({"score_threshold": 1.5}, "out of range"),
                           ({"model_path": str(tmp_path / "nope.onnx")}, "does not exist")):
        res = probe.set_params("/detection", **values)
        assert not res[0].successful and reason in res[0].reason, (values, res[0].reason)
    assert probe.get_params("/detection", "input_size", "precision", "backend") == [0, "auto", "onnxruntime"]

    # Switch to a YOLO ONNX model: the next frames come from onnxruntime with the model's box.
    assert probe.set_params("/detection", model_path=person_model(tmp_path))[0].successful
    deadline = time.monotonic() + 20
    det = None
    while time.monotonic() < deadline and (det is None or len(det.detections) != 1):
        det = send_until(probe, pub, out["det"], image)
    assert det.backend == "onnxruntime", g.log("detection")
    [d] = det.detections
    assert (d.x_min, d.y_min, d.x_max, d.y_max, d.class_name) == (200, 20, 300, 320, "person")
    assert d.score == pytest.approx(0.8)


def test_corrupt_model_is_reported_and_the_previous_detector_kept(probe, node, tmp_path):
    g, pub, out = node()
    image = photo("indoor_basketball.jpg")
    assert send_until(probe, pub, out["det"], image) is not None, g.log("detection")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    assert probe.set_params("/detection", model_path=str(corrupt))[0].successful
    assert wait_for(lambda: "corrupt.onnx" in (diag_values(out["diag"], STATUS) or {}).get("load_error", ""), 10), \
        g.log("detection")
    d = diag_values(out["diag"], STATUS)
    assert d["level"] == 2 and "corrupt.onnx" in d["message"] and "still running onnxruntime" in d["message"]
    assert d["model"].endswith("ssd_mobilenet_v2_coco_int8.onnx") and "corrupt.onnx" in d["load_error"]
    assert "corrupt.onnx" in g.log("detection")
    det = send_until(probe, pub, out["det"], image)
    assert det.backend == "onnxruntime" and det.detections and g.alive()["detection"]

    assert probe.set_params("/detection", model_path=person_model(tmp_path))[0].successful
    assert wait_for(lambda: (diag_values(out["diag"], STATUS) or {}).get("model", "").endswith("person.onnx"), 10)
    assert diag_values(out["diag"], STATUS)["load_error"] == ""


def test_missing_model_at_start_falls_back_to_hog_with_error_then_recovers(probe, node, tmp_path):
    missing = str(tmp_path / "gone.onnx")
    g, pub, out = node(model_path=missing)
    det = send_until(probe, pub, out["det"], photo("indoor_basketball.jpg"))
    assert det is not None and det.backend == "opencv_hog" and det.detections, g.log("detection")
    assert wait_for(lambda: (diag_values(out["diag"], STATUS) or {}).get("level") == 2, 5)
    assert "gone.onnx does not exist" in diag_values(out["diag"], STATUS)["message"]
    assert probe.set_params("/detection", model_path=person_model(tmp_path))[0].successful
    assert wait_for(lambda: (diag_values(out["diag"], STATUS) or {}).get("backend") == "onnxruntime", 10)
    det = send_until(probe, pub, out["det"], photo("indoor_basketball.jpg"))
    assert det.backend == "onnxruntime"


def test_detector_switches_between_fallback_failure_and_normal_keep_the_loader_alive(probe, node, tmp_path):
    """The loader reports each outcome at its own severity (fallback WARN, failure ERROR, normal INFO): rclpy
    refuses a second severity at one call site, which would end the loader thread at the first switch."""
    model = person_model(tmp_path)
    g, pub, out = node(backend="tensorrt", model_path=model, input_size=0)
    image = photo("indoor_basketball.jpg")

    def backend_in_use(name: str) -> bool:
        det = send_until(probe, pub, out["det"], image, timeout=5)
        return det is not None and det.backend == name

    # no GPU here: tensorrt falls back to onnxruntime (WARN), then onnxruntime as asked (INFO)
    assert wait_for(lambda: "tensorrt unavailable" in (diag_values(out["diag"], STATUS) or {}).get("fallback", ""),
                    15), g.log("detection")
    assert backend_in_use("onnxruntime"), g.log("detection")
    assert probe.set_params("/detection", backend="onnxruntime")[0].successful
    assert wait_for(lambda: (diag_values(out["diag"], STATUS) or {}).get("fallback", "?") == ""
                    and diag_values(out["diag"], STATUS)["backend"] == "onnxruntime", 15), g.log("detection")
    # a model that cannot load (ERROR, the previous detector kept), then a normal one again (INFO)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    assert probe.set_params("/detection", model_path=str(corrupt))[0].successful
    assert wait_for(lambda: "corrupt.onnx" in (diag_values(out["diag"], STATUS) or {}).get("load_error", ""), 15)
    assert probe.set_params("/detection", backend="opencv_hog", input_size=960)[0].successful
    assert wait_for(lambda: backend_in_use("opencv_hog"), 30), g.log("detection")
    assert probe.set_params("/detection", backend="tensorrt", model_path=model, input_size=0)[0].successful
    assert wait_for(lambda: backend_in_use("onnxruntime"), 30), g.log("detection")
    log = g.log("detection")
    assert "Logger severity cannot be changed" not in log and "Traceback" not in log, log
    assert g.alive()["detection"]


def test_malformed_frames_are_counted_by_reason_and_the_next_good_frame_comes_out(probe, node):
    g, pub, out = node(max_image_dim=1000)
    image = photo("indoor_basketball.jpg")
    assert send_until(probe, pub, out["det"], image) is not None, g.log("detection")
    mutations = {"encoding": lambda m: setattr(m, "encoding", "yuv422_weird"),
                 "step": lambda m: setattr(m, "step", 3),
                 "size": lambda m: setattr(m, "height", 0),
                 "data_length": lambda m: setattr(m, "data", bytes(m.data[:100]))}
    def counted(reason: str) -> int:
        return int((diag_values(out["diag"], STATUS) or {}).get(f"bad_{reason}", 0))

    def deliver(m, reason: str, expected: int):
        # Best effort, keep last 1: a sample the node's executor has not taken when the next one arrives
        # is gone (seen on a loaded machine with frames 0.1 s apart). Each frame is sent until its own
        # reason's count shows it, so no frame can stand in for another; a frame counted twice shows as a
        # count above the expected one at the end.
        for _ in range(10):
            pub.publish(m)
            if wait_for(lambda: counted(reason) >= expected, 3):
                return
        pytest.fail(f"a frame with bad {reason} sent 10 times was counted {counted(reason)} times, not {expected}: "
                    f"{diag_values(out['diag'], STATUS)}\n{g.log('detection')}")

    for reason, mutate in mutations.items():
        for n in range(1, 4):
            m = fill_image(Image(), image, "rgb8", Header(frame_id="bad"))
            mutate(m)
            deliver(m, reason, n)
    deliver(fill_image(Image(), np.zeros((480, 1200, 3), np.uint8), "rgb8", Header(frame_id="bad")), "size", 4)
    det = send_until(probe, pub, out["det"], image, frame_id="good")
    assert det is not None and det.header.frame_id == "good" and det.detections
    assert all(m.header.frame_id != "bad" for m in out["det"])
    assert wait_for(lambda: int((diag_values(out["diag"], STATUS) or {}).get("frames_bad", 0)) >= 13, 5), \
        str(diag_values(out["diag"], STATUS))
    d = diag_values(out["diag"], STATUS)
    # zero height x3 and the 1200-pixel-wide frame (max_image_dim 1000) are both "size"
    assert {k: int(d[f"bad_{k}"]) for k in mutations} == {"encoding": 3, "step": 3, "size": 4, "data_length": 3}
    assert g.alive()["detection"]


def test_rate_limit_and_nice_value(probe, node):
    g, pub, out = node(rate_limit=2.0, input_size=0)
    image = photo("indoor_basketball.jpg")
    assert send_until(probe, pub, out["det"], image) is not None, g.log("detection")
    out["det"].clear()
    start = time.monotonic()
    while time.monotonic() - start < 2.0:
        send(probe, pub, image)
        time.sleep(0.05)
    # Frames not processed are either rate-limited or superseded in the one-slot hand-off (a busy CPU
    # shifts them between the two counters).
    skipped = lambda: sum(int((diag_values(out["diag"], STATUS) or {}).get(k, 0))  # noqa: E731
                          for k in ("frames_rate_limited", "frames_dropped"))
    assert wait_for(lambda: skipped() > 10, 10), diag_values(out["diag"], STATUS)
    assert int(diag_values(out["diag"], STATUS)["frames_rate_limited"]) > 0
    assert 2 <= len(out["det"]) <= 6    # 2 Hz over 2 s (+1 at each edge)
    pid = g.pids()["detection"]
    nices = {int(open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[16])
             for t in os.listdir(f"/proc/{pid}/task")}
    assert nices == {graph.DETECTION_NICE}   # every thread, DDS ones included
    assert diag_values(out["diag"], STATUS)["nice"] == str(graph.DETECTION_NICE)
