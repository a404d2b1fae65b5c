"""What ROS tools expect of camera and image nodes, with real node processes: static TF laid out as
realsense-ros lays it out (mount pose a parameter, extrinsics from the recording), and
`<image>/compressed` beside every image (JPEG for colour, 16-bit PNG for depth), encoded only while
someone subscribes."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from conftest import diag_values, wait_for
from muon_ad_ros import graph
from muon_ad_ros.camera import recording as rec
from muon_ad_ros.nodes.compressed import encode
from muon_ad_ros.nodes.qos import image_qos
from muon_ad_ros.nodes.tf import quaternion, rpy_matrix

W, H = 160, 120
RS_STATUS = "camera/realsense_camera: camera"
OPTICAL_Q = (-0.5, 0.5, -0.5, 0.5)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    scenes = [s for s in rec.bundled_scenes(data_dir=None) if s.name in ("astronaut", "coffee")]
    return str(rec.make_recording(tmp_path_factory.mktemp("rec") / "photos.db3", scenes, W, H, 30, 12))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    for k, s in enumerate(s for s in rec.bundled_scenes(data_dir=None) if s.name in ("astronaut", "coffee")):
        cv2.imwrite(str(d / f"{k:02d}.png"), cv2.cvtColor(cv2.resize(s.rgb, (320, 240)), cv2.COLOR_RGB2BGR))
    return d


def tf_static(probe):
    from tf2_msgs.msg import TFMessage
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return probe.collect(TFMessage, "/tf_static", qos)


def latest(msgs) -> dict:
    """Returns {child frame: TransformStamped} over every node's latest /tf_static set."""
    out = {}
    for m in list(msgs):
        for t in m.transforms:
            out[t.child_frame_id] = t
    return out


def xyz(t):
    return (t.transform.translation.x, t.transform.translation.y, t.transform.translation.z)


def q(t):
    r = t.transform.rotation
    return (r.x, r.y, r.z, r.w)


def test_quaternion_matches_tf2_conventions():
    assert quaternion(rpy_matrix(0.1, 0.2, 0.3)) == pytest.approx((0.0342708, 0.1060205, 0.1435722, 0.9833474), abs=1e-6)
    assert quaternion(rpy_matrix(0, 0, math.pi / 2)) == pytest.approx((0, 0, math.sqrt(0.5), math.sqrt(0.5)))


def test_static_tf_places_both_cameras_on_the_robot(probe, start_nodes, recording, folder):
    tfs = tf_static(probe)
    g = start_nodes([
        graph.NodeSpec("realsense_camera", "realsense_camera", "camera", {"recording": recording, "width": W,
                                                                          "height": H, "fps": 30.0}),
        graph.NodeSpec("csi_camera", "csi_camera", "csi", {"source": str(folder), "width": 320, "height": 240,
                                                            "mount_pose": [0.1, 0.0, 0.5, 0.0, 0.0, math.pi / 2]})])
    logs = lambda: {n: g.log(n)[-1500:] for n in g.procs}  # noqa: E731
    want = {"camera_link", "camera_depth_frame", "camera_depth_optical_frame", "camera_color_frame",
            "camera_color_optical_frame", "csi_link", "csi_frame", "csi_optical_frame"}
    # the colour frame moves from identity to the recording's extrinsics once the source is open
    assert wait_for(lambda: want <= set(latest(tfs)) and abs(xyz(latest(tfs)["camera_color_frame"])[1]) > 0.01,
                    30), (latest(tfs), logs())
    t = latest(tfs)
    assert t["camera_link"].header.frame_id == t["csi_link"].header.frame_id == "base_link"
    assert xyz(t["camera_link"]) == (0, 0, 0) and q(t["camera_link"]) == (0, 0, 0, 1)
    assert xyz(t["csi_link"]) == pytest.approx((0.1, 0.0, 0.5))
    assert q(t["csi_link"]) == pytest.approx((0, 0, math.sqrt(0.5), math.sqrt(0.5)))
    # realsense-ros's layout: camera_link at the depth sensor, colour 15 mm to its left (+y, REP-103)
    assert t["camera_color_frame"].header.frame_id == "camera_link"
    assert xyz(t["camera_color_frame"]) == pytest.approx((0.0, 0.015, 0.0), abs=1e-4)
    assert xyz(t["camera_depth_frame"]) == (0, 0, 0)
    for optical, body in (("camera_color_optical_frame", "camera_color_frame"),
                          ("camera_depth_optical_frame", "camera_depth_frame"), ("csi_optical_frame", "csi_frame")):
        assert t[optical].header.frame_id == body and q(t[optical]) == pytest.approx(OPTICAL_Q)

    # the mount is a parameter: set at run time, republished; a bad pose is refused with the reason
    res = probe.set_params("/csi/csi_camera", mount_pose=[1.0, 2.0])[0]
    assert not res.successful and "6 finite numbers" in res.reason
    assert probe.set_params("/csi/csi_camera", mount_pose=[0.2, 0.0, 0.3, 0.0, 0.0, 0.0],
                            parent_frame_id="mast")[0].successful
    assert wait_for(lambda: latest(tfs)["csi_link"].header.frame_id == "mast", 10), latest(tfs)["csi_link"]
    assert xyz(latest(tfs)["csi_link"]) == pytest.approx((0.2, 0.0, 0.3))


def test_compressed_twins_encode_only_while_subscribed(probe, start_nodes, recording):
    raw = probe.collect(Image, "/camera/color/image_raw")
    depth = probe.collect(Image, "/camera/aligned_depth_to_color/image_raw")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = start_nodes([graph.NodeSpec("realsense_camera", "realsense_camera", "camera",
                                    {"recording": recording, "width": W, "height": H, "fps": 30.0,
                                     "jpeg_quality": 90})])
    values = lambda: diag_values(diags, RS_STATUS) or {}  # noqa: E731
    assert wait_for(lambda: int(values().get("frames_processed", 0)) >= 10, 30), g.log("realsense_camera")
    assert values()["compressed_frames"] == "0", values()     # nobody subscribed to .../compressed yet

    jpeg = probe.collect(CompressedImage, "/camera/color/image_raw/compressed", image_qos(5))
    png = probe.collect(CompressedImage, "/camera/aligned_depth_to_color/image_raw/compressed", image_qos(5))

    def pairs(compressed, originals):
        by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in list(originals)}
        return [(c, by_stamp[k]) for c in list(compressed)
                if (k := (c.header.stamp.sec, c.header.stamp.nanosec)) in by_stamp]
    assert wait_for(lambda: pairs(jpeg, raw) and pairs(png, depth), 20), (len(jpeg), len(png), g.log("realsense_camera"))
    c, r = pairs(jpeg, raw)[-1]
    assert c.format == "rgb8; jpeg compressed bgr8" and c.header.frame_id == r.header.frame_id
    original = np.frombuffer(bytes(r.data), np.uint8).reshape(H, W, 3)
    assert bytes(c.data) == encode(original, "rgb8", jpeg_quality=90)[0]     # that frame, at the set quality
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(bytes(c.data), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert decoded.shape == original.shape
    c, d = pairs(png, depth)[-1]
    assert c.format == "16UC1; png compressed mono16"
    decoded = cv2.imdecode(np.frombuffer(bytes(c.data), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, np.frombuffer(bytes(d.data), np.uint16).reshape(H, W))
    assert wait_for(lambda: int(values().get("compressed_frames", 0)) > 0, 5)
    assert float(values()["compressed_encode_ms"]) > 0


def test_stylized_and_annotated_have_compressed_twins(probe, start_nodes, folder):
    from bundle_helpers import tiny_bundle
    bundle = tiny_bundle(folder.parent / "bundle")
    stylized = probe.collect(CompressedImage, "/stylized/image_raw/compressed", image_qos(5))
    annotated = probe.collect(CompressedImage, "/detections/image_annotated/compressed", image_qos(5))
    g = start_nodes([graph.NodeSpec("csi_camera", "csi_camera", "csi", {"source": str(folder), "width": 320,
                                                                        "height": 240, "fps": 10.0}),
                     graph.NodeSpec("style_transfer", "style_transfer", "", {"model_dir": bundle, "threads": 1,
                                                                            "sched_priority": 0},
                                    (("image", "/csi/image_raw"),)),
                     graph.NodeSpec("detection", "detection", "", {}, (("image", "/csi/image_raw"),))])
    assert wait_for(lambda: stylized and annotated, 40), {n: g.log(n)[-1500:] for n in g.procs}
    for m in (stylized[-1], annotated[-1]):
        assert m.format == "rgb8; jpeg compressed bgr8" and m.header.frame_id == "csi_optical_frame"
        assert cv2.imdecode(np.frombuffer(bytes(m.data), np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)


def test_encode_rejects_an_encoding_without_a_codec():
    with pytest.raises(ValueError, match="no compressed form"):
        encode(np.zeros((4, 4), np.float32), "32FC1")
