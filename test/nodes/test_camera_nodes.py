"""realsense_camera and csi_camera as their own processes over real DDS: a recording made here from
bundled photographs (pyrealsense2 software device) and an image folder in; rgb8 images, aligned
depth and CameraInfo out with the source's stamps and REP-103 frame ids; a recording that ends or
is missing; calibration files; parameter validation."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image

from conftest import diag_values, wait_for
from muon_ad_ros import graph
from muon_ad_ros.camera import recording as rec
from muon_ad_ros.camera.model import load_calibration
from muon_ad_ros.nodes.qos import image_qos

W, H, FPS, N = 160, 120, 30, 12
RS_STATUS, CSI_STATUS = "camera/realsense_camera: camera", "csi/csi_camera: camera"
OK, WARN, ERROR = 0, 1, 2          # diagnostic_msgs/DiagnosticStatus levels as diag_values returns them
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "camera_info_example.yaml"


@pytest.fixture(scope="module")
def scenes():
    return [s for s in rec.bundled_scenes(data_dir=None) if s.name in ("astronaut", "coffee")]


@pytest.fixture(scope="module")
def recording(tmp_path_factory, scenes):
    return str(rec.make_recording(tmp_path_factory.mktemp("rec") / "photos.db3", scenes, W, H, FPS, N))


def rs_node(start_nodes, **params):
    spec = graph.NodeSpec("realsense_camera", "realsense_camera", "camera",
                          {"width": W, "height": H, "fps": float(FPS), **params})
    return start_nodes([spec])


def stamp(msg) -> tuple:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


# CameraInfo travels with its image under sensor-data QoS, as image_transport's camera publishers do.
def level(diags, name) -> int | None:
    return (diag_values(diags, name) or {}).get("level")


def test_recording_publishes_color_aligned_depth_and_camera_info(probe, start_nodes, recording, scenes):
    color = probe.collect(Image, "/camera/color/image_raw")
    info = probe.collect(CameraInfo, "/camera/color/camera_info", image_qos(5))
    depth = probe.collect(Image, "/camera/aligned_depth_to_color/image_raw")
    depth_info = probe.collect(CameraInfo, "/camera/aligned_depth_to_color/camera_info", image_qos(5))
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = rs_node(start_nodes, recording=recording)
    assert wait_for(lambda: len(color) >= 2 * N and len(depth) >= N and len(info) >= N, 20), g.log("realsense_camera")

    rendered = [rec.render(scenes[k], rec.pan_zoom(scenes[k].rgb.shape[:2], W, H, t, seed=k), rec.Rig(W, H))
                for k, t in rec.frame_plan(scenes, N)]
    for msg in color[:N]:
        assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", W, H, 3 * W)
        assert msg.header.frame_id == "camera_color_optical_frame"
        img = np.frombuffer(msg.data, np.uint8).reshape(H, W, 3)
        assert any(np.array_equal(img, r[0]) for r in rendered)      # a frame of the recording, unchanged
    # Hardware timestamps: consecutive frames 1/30 s apart (loop points aside), near the host clock.
    gaps = np.diff([s + ns * 1e-9 for s, ns in map(stamp, color)])
    assert np.median(gaps) == pytest.approx(1 / FPS, abs=2e-3)
    assert abs(color[-1].header.stamp.sec + color[-1].header.stamp.nanosec * 1e-9 - time.time()) < 2.0

    color_stamps = {stamp(m) for m in color}
    by_stamp = {stamp(m): m for m in info}
    d = depth[N // 2]
    assert (d.encoding, d.width, d.height, d.header.frame_id) == ("16UC1", W, H, "camera_color_optical_frame")
    assert stamp(d) in color_stamps and stamp(d) in by_stamp
    mm = np.frombuffer(d.data, np.uint16).reshape(H, W)
    assert 300 < np.median(mm[mm > 0]) < 10000              # the scenes' layouts are 0.5-6 m away

    rig = rec.Rig(W, H)
    fx, fy, cx, cy = rig.color
    ci = by_stamp[stamp(d)]
    assert (ci.width, ci.height, ci.distortion_model, ci.header.frame_id) == (W, H, "plumb_bob",
                                                                             "camera_color_optical_frame")
    assert list(ci.k) == pytest.approx([fx, 0, cx, 0, fy, cy, 0, 0, 1], rel=1e-6)
    assert list(ci.p) == pytest.approx([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], rel=1e-6)
    assert list(depth_info[-1].k) == list(ci.k)               # aligned depth has the color intrinsics

    assert wait_for(lambda: level(diags, RS_STATUS) == OK and
                    int(diag_values(diags, RS_STATUS)["frames_processed"]) > 0, 5), diag_values(diags, RS_STATUS)
    values = diag_values(diags, RS_STATUS)
    assert values["state"] == "streaming" and values["depth"] == "aligned to color"
    assert values["timestamp_domain"] == "hardware_clock"
    assert float(values["rate_hz"]) > 0 and values["depth_to_color_t_m"].startswith("0.0150")


def test_depth_is_aligned_only_while_someone_takes_it(probe, start_nodes, recording):
    color = probe.collect(Image, "/camera/color/image_raw")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = rs_node(start_nodes, recording=recording)

    def aligning():
        return (diag_values(diags, RS_STATUS) or {}).get("depth_aligning")
    assert wait_for(lambda: len(color) > 10 and aligning() == "False", 20), g.log("realsense_camera")
    depth = probe.collect(Image, "/camera/aligned_depth_to_color/image_raw")
    assert wait_for(lambda: len(depth) > 3 and aligning() == "True", 10), g.log("realsense_camera")
    assert depth[-1].header.frame_id == "camera_color_optical_frame" and depth[-1].width == W


def test_unaligned_depth_uses_the_depth_frame_and_intrinsics(probe, start_nodes, recording):
    depth = probe.collect(Image, "/camera/depth/image_rect_raw")
    info = probe.collect(CameraInfo, "/camera/depth/camera_info", image_qos(5))
    g = rs_node(start_nodes, recording=recording, align_depth=False)
    assert wait_for(lambda: depth and info, 20), g.log("realsense_camera")
    fx, fy, cx, cy = rec.Rig(W, H).depth
    assert depth[0].header.frame_id == info[0].header.frame_id == "camera_depth_optical_frame"
    assert list(info[0].k) == pytest.approx([fx, 0, cx, 0, fy, cy, 0, 0, 1], rel=1e-6)


def test_recording_end_is_reported_and_the_node_recovers_when_looping_is_set(probe, start_nodes, recording):
    color = probe.collect(Image, "/camera/color/image_raw")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = rs_node(start_nodes, recording=recording, loop=False)
    assert wait_for(lambda: level(diags, RS_STATUS) == ERROR, 20), g.log("realsense_camera")
    values = diag_values(diags, RS_STATUS)
    assert values["state"] == "ended" and f"ended after {N} frames" in values["message"]
    assert len(color) <= N and g.alive()["realsense_camera"]
    assert probe.set_params("/camera/realsense_camera", loop=True)[0].successful
    before = len(color)
    assert wait_for(lambda: len(color) > before + N, 10)
    assert wait_for(lambda: level(diags, RS_STATUS) == OK, 5)
    assert g.stop() == {"realsense_camera": 0}      # SIGINT ends it cleanly, pipeline stopped


def test_missing_recording_is_an_error_until_a_valid_one_is_set(probe, start_nodes, recording, tmp_path):
    color = probe.collect(Image, "/camera/color/image_raw")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = rs_node(start_nodes, recording=str(tmp_path / "gone.db3"))
    assert wait_for(lambda: level(diags, RS_STATUS) == ERROR, 15), g.log("realsense_camera")
    assert "gone.db3 not found" in diag_values(diags, RS_STATUS)["message"]
    for values, reason in (({"recording": "clip.mp4"}, "must be a .db3 or .bag"),
                           ({"serial": "0123"}, "not both"), ({"fps": 0.5}, "out of range"),
                           ({"enable_depth": False}, "align_depth needs enable_depth")):
        res = probe.set_params("/camera/realsense_camera", **values)[0]
        assert not res.successful and reason in res.reason, (values, res.reason)
    assert probe.set_params("/camera/realsense_camera", recording=recording)[0].successful
    assert wait_for(lambda: color, 15) and wait_for(lambda: level(diags, RS_STATUS) == OK, 5)
    assert g.alive()["realsense_camera"]


@pytest.fixture
def folder(tmp_path, scenes):
    d = tmp_path / "images"
    d.mkdir()
    for k, s in enumerate(scenes):
        cv2.imwrite(str(d / f"{k:02d}.png"), cv2.cvtColor(cv2.resize(s.rgb, (320, 240)), cv2.COLOR_RGB2BGR))
    return d


def csi_node(start_nodes, folder, **params):
    spec = graph.NodeSpec("csi_camera", "csi_camera", "csi",
                          {"source": str(folder), "width": 320, "height": 240, "fps": 20.0, **params})
    return start_nodes([spec])


def test_csi_folder_with_calibration(probe, start_nodes, folder):
    images = probe.collect(Image, "/csi/image_raw")
    infos = probe.collect(CameraInfo, "/csi/camera_info", image_qos(5))
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = csi_node(start_nodes, folder, calibration_file=str(EXAMPLE))
    assert wait_for(lambda: len(images) >= 3 and len(infos) >= 3, 20), g.log("csi_camera")
    # each image is one of the folder's, pixel for pixel (held image_hold seconds each)
    files = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in sorted(folder.glob("*.png"))]
    assert all(any(np.array_equal(np.frombuffer(m.data, np.uint8).reshape(240, 320, 3), f) for f in files)
               for m in list(images))
    assert {m.header.frame_id for m in images} == {"csi_optical_frame"}
    info = {stamp(m): m for m in infos}[stamp(images[-1])]
    model = load_calibration(EXAMPLE).scaled(320, 240)
    assert list(info.k) == pytest.approx(model.k) and (info.width, info.height) == (320, 240)
    assert wait_for(lambda: level(diags, CSI_STATUS) == OK, 5), diag_values(diags, CSI_STATUS)
    assert diag_values(diags, CSI_STATUS)["calibration"] == "imx219_nominal"

    res = probe.set_params("/csi/csi_camera", calibration_file=str(folder / "missing.yaml"))[0]
    assert not res.successful and "cannot read calibration file" in res.reason
    assert probe.get_params("/csi/csi_camera", "calibration_file") == [str(EXAMPLE)]


def test_csi_without_calibration_warns_and_publishes_uncalibrated_info(probe, start_nodes, folder):
    infos = probe.collect(CameraInfo, "/csi/camera_info", image_qos(5))
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = csi_node(start_nodes, folder)
    assert wait_for(lambda: infos, 20), g.log("csi_camera")
    assert list(infos[0].k) == [0.0] * 9 and (infos[0].width, infos[0].height) == (320, 240)
    assert wait_for(lambda: level(diags, CSI_STATUS) == WARN, 5)
    assert "uncalibrated" in diag_values(diags, CSI_STATUS)["message"]


def test_csi_source_that_disappears_is_reported_and_resumes(probe, start_nodes, folder, tmp_path):
    images = probe.collect(Image, "/csi/image_raw")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = csi_node(start_nodes, folder, frame_timeout=0.5)
    assert wait_for(lambda: images, 20), g.log("csi_camera")
    moved = folder.rename(tmp_path / "away")
    assert wait_for(lambda: level(diags, CSI_STATUS) in (WARN, ERROR) and
                    diag_values(diags, CSI_STATUS)["state"] == "reconnecting", 5), diag_values(diags, CSI_STATUS)
    assert int(diag_values(diags, CSI_STATUS)["reconnects"]) >= 0
    moved.rename(folder)
    count = len(images)
    assert wait_for(lambda: len(images) > count + 2, 15), g.log("csi_camera")
    assert wait_for(lambda: int(diag_values(diags, CSI_STATUS)["reconnects"]) >= 1, 5)
    assert g.alive()["csi_camera"]


def test_csi_folder_holds_each_image_for_image_hold(probe, start_nodes, folder):
    images = probe.collect(Image, "/csi/image_raw")
    g = csi_node(start_nodes, folder, image_hold=0.5)      # 10 frames per image at 20 fps
    assert wait_for(lambda: len(images) >= 25, 30), g.log("csi_camera")
    frames = [bytes(m.data) for m in list(images)[:25]]
    changes = sum(a != b for a, b in zip(frames, frames[1:]))
    assert 1 <= changes <= 4, changes
