"""The edge graph of graph.edge_graph() end to end, every node its own process: a RealSense
recording of bundled photographs (people included) in; stylized frames, pruning state, detections
with boxes on people, markers and diagnostics of every node out, headers carried through."""
from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from conftest import diag_values, wait_for
from muon_ad_ros import graph
from muon_ad_ros.camera import recording as rec
from muon_ad_ros.msg import DetectionArray, PruningState


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    people = [s for s in rec.bundled_scenes() if s.name.startswith("street")][:1]
    assert people, "the bundled street photographs with people are missing"
    return str(rec.make_recording(tmp_path_factory.mktemp("rec") / "edge.db3", people, 640, 480, 30, 30))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from bundle_helpers import tiny_bundle
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


def test_edge_graph_end_to_end(probe, start_nodes, recording, bundle):
    specs = graph.edge_graph(("realsense",), recording=recording, style_model=bundle, controller_mode="target_fps")
    raw = probe.collect(Image, graph.CAMERA_TOPIC)
    stylized = probe.collect(Image, "/stylized/image_raw")
    states = probe.collect(PruningState, "/stylized/pruning_state")
    detections = probe.collect(DetectionArray, "/detections")
    markers = probe.collect(MarkerArray, "/detections/markers")
    annotated = probe.collect(Image, "/detections/image_annotated")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = start_nodes(specs)
    logs = lambda: {n: g.log(n)[-1500:] for n in g.procs}  # noqa: E731
    assert wait_for(lambda: len(stylized) >= 10 and any(d.detections for d in detections), 60), logs()
    assert all(g.alive().values()), logs()

    out = stylized[-1]
    assert out.header.frame_id == "camera_color_optical_frame"
    assert (out.width, out.height, out.encoding) == (640, 480, "rgb8")

    def passed_through():
        # the camera's stamp comes out unchanged (this process may not receive every raw frame: best effort)
        raw_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in list(raw)}
        return any((m.header.stamp.sec, m.header.stamp.nanosec) in raw_stamps for m in list(stylized))
    assert wait_for(passed_through, 10), (len(raw), len(stylized))
    assert states and states[-1].header.frame_id == "camera_color_optical_frame"
    people = [d for msg in detections for d in msg.detections]
    assert people and all(d.class_name == "person" and d.x_max > d.x_min for d in people)
    assert wait_for(lambda: markers and annotated, 10)
    assert annotated[-1].header.frame_id == "camera_color_optical_frame"
    assert np.frombuffer(annotated[-1].data, np.uint8).size == 640 * 480 * 3

    names = ("camera/realsense_camera: camera", "style_transfer: style", "detection: detection", "controller: control")
    assert wait_for(lambda: all(diag_values(diags, n) for n in names), 10), [diag_values(diags, n) for n in names]
    assert wait_for(lambda: "target_fps" in diag_values(diags, "controller: control")["message"], 5), \
        diag_values(diags, "controller: control")
