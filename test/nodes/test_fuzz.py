"""Malformed and random Image / CameraInfo messages into every subscribing node (issue 6 item 1):
each node stays alive, its counters add up, and the next valid frame comes out correct."""
from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from conftest import diag_values, wait_for
from muon_ad_ros import graph
from muon_ad_ros.msg import DetectionArray
from muon_ad_ros.nodes.images import fill_image
from muon_ad_ros.nodes.qos import image_qos

CAM = "/fuzz_cam/image_raw"
INFO = "/fuzz_cam/camera_info"
DEPTH = "/fuzz_cam/depth"
N_MESSAGES = 1000
ENCODINGS = ["rgb8", "bgr8", "mono8", "rgba8", "16UC1", "32FC1", "yuv422", "", "bayer_rggb8", "rgb16", "\x00"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from bundle_helpers import tiny_bundle
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


def random_image(rng: np.random.Generator) -> Image:
    """Returns an Image whose fields disagree with each other in random ways (sometimes valid)."""
    msg = Image(header=Header(frame_id="fuzz"))
    msg.encoding = str(rng.choice(ENCODINGS))
    msg.height = int(rng.choice([0, 1, 7, 64, 480, 70000, 2**32 - 1]))
    msg.width = int(rng.choice([0, 1, 9, 64, 640, 70000, 2**32 - 1]))
    msg.step = int(rng.choice([0, 3, msg.width, msg.width * 3, msg.width * 2 + 1, 2**32 - 1]) % 2**32)
    msg.is_bigendian = int(rng.integers(0, 2))
    n = int(rng.choice([0, 1, 100, 64 * 64 * 3, int(rng.integers(0, 20000))]))
    msg.data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return msg


def random_info(rng: np.random.Generator) -> CameraInfo:
    info = CameraInfo(header=Header(frame_id="fuzz"))
    info.height, info.width = int(rng.integers(0, 5000)), int(rng.integers(0, 5000))
    info.distortion_model = str(rng.choice(["plumb_bob", "equidistant", "", "nonsense"]))
    info.d = rng.normal(size=int(rng.integers(0, 9))).tolist()
    info.k = rng.normal(size=9).tolist()
    return info


def counters(d: dict | None) -> tuple[int, int, int, int]:
    d = d or {}
    return tuple(int(d.get(k, 0)) for k in ("frames_received", "frames_processed", "frames_bad", "frames_dropped"))


def test_fuzzed_messages_leave_every_node_alive_and_counted(probe, start_nodes, bundle):
    specs = [graph.NodeSpec("style_transfer", "style_transfer", "", {"model_dir": bundle, "threads": 1},
                            (("image", CAM),)),
             graph.NodeSpec("detection", "detection", "", {}, (("image", CAM),)),
             graph.NodeSpec("controller", "controller", "", {"mode": "depth_lod", "detection_node": ""},
                            (("depth", DEPTH),))]
    g = start_nodes(specs)
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    stylized = probe.collect(Image, "/stylized/image_raw")
    detections = probe.collect(DetectionArray, "/detections")
    pub = probe.node.create_publisher(Image, CAM, image_qos(10))
    info_pub = probe.node.create_publisher(CameraInfo, INFO, 10)
    depth_pub = probe.node.create_publisher(Image, DEPTH, image_qos(10))
    assert wait_for(lambda: pub.get_subscription_count() >= 2 and depth_pub.get_subscription_count() >= 1, 30), \
        {n: g.log(n)[-2000:] for n in g.procs}

    rng = np.random.default_rng(1234)
    for i in range(N_MESSAGES):
        pub.publish(random_image(rng))
        depth_pub.publish(random_image(rng))
        info_pub.publish(random_info(rng))
        if i % 20 == 0:
            time.sleep(0.01)
    time.sleep(1.0)
    assert all(g.alive().values()), {n: g.log(n)[-3000:] for n in g.procs}

    # A valid frame afterwards comes out right, with its header.
    good = np.random.default_rng(0).integers(0, 255, (128, 160, 3), dtype=np.uint8)
    hdr = Header(frame_id="after_fuzz")
    stylized.clear()
    detections.clear()
    for _ in range(5):
        hdr.stamp = probe.node.get_clock().now().to_msg()
        pub.publish(fill_image(Image(), good, "rgb8", hdr))
        time.sleep(0.2)
    assert wait_for(lambda: any(m.header.frame_id == "after_fuzz" for m in stylized), 10), g.log("style_transfer")
    out = next(m for m in stylized if m.header.frame_id == "after_fuzz")
    assert (out.height, out.width, out.encoding, len(out.data)) == (128, 160, "rgb8", 128 * 160 * 3)
    assert wait_for(lambda: any(m.header.frame_id == "after_fuzz" for m in detections), 10), g.log("detection")

    time.sleep(2.5)     # two diagnostics periods: counters settle
    assert all(g.alive().values())
    for name in ("style_transfer: style", "detection: detection"):
        received, processed, bad, dropped = counters(diag_values(diags, name))
        assert bad >= 100, (name, diag_values(diags, name))
        # Every received frame is accounted for: processed, rejected with a reason, or superseded.
        assert received - 1 <= processed + bad + dropped <= received, (name, diag_values(diags, name))
        reasons = {k for k in diag_values(diags, name) if k.startswith("bad_")}
        assert {"bad_encoding", "bad_size"} <= reasons, (name, reasons)
    ctrl = diag_values(diags, "controller: control")
    assert int(ctrl["depth_frames_bad"]) >= 100 and int(ctrl["depth_frames_received"]) >= int(ctrl["depth_frames_bad"])
