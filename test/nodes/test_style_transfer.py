"""style_transfer as its own process over real DDS: frames in, stylized frames and pruning state out
with the source header, run-time retention, SCHED_FIFO on the inference thread, bad input."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from conftest import Camera, diag_values, wait_for
from muon_ad_ros import graph
from muon_ad_ros.nodes.images import fill_image
from muon_ad_ros.nodes.qos import image_qos

TOPIC = "/test_cam/image_raw"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """An exported student bundle (untrained weights: the plumbing, not the look, is under test)."""
    from bundle_helpers import tiny_bundle
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


def style_spec(model_dir: str, **params) -> graph.NodeSpec:
    return graph.NodeSpec("style_transfer", "style_transfer", "",
                          {"model_dir": model_dir, "threads": 1, **params}, (("image", TOPIC),))


def frame(i: int, h: int = 128, w: int = 160) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 2 + i) % 256, (yy * 2) % 256, ((xx + yy + 3 * i) % 256)], -1).astype(np.uint8)


def publish_frames(probe, pub, n: int, encoding="rgb8", period=0.05, **kw):
    stamps = []
    for i in range(n):
        hdr = Header(frame_id="test_optical_frame")
        hdr.stamp = probe.node.get_clock().now().to_msg()
        arr = frame(i, **kw)
        if encoding == "bgr8":
            arr = arr[..., ::-1]
        pub.publish(fill_image(Image(), np.ascontiguousarray(arr), encoding, hdr))
        stamps.append((hdr.stamp.sec, hdr.stamp.nanosec))
        time.sleep(period)
    return stamps


def test_stylizes_frames_keeps_header_and_changes_compute_with_retention(probe, start_nodes, bundle):
    from muon_ad_ros.msg import PruningState
    g = start_nodes([style_spec(bundle)])
    out = probe.collect(Image, "/stylized/image_raw")
    states = probe.collect(PruningState, "/stylized/pruning_state")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    pub = probe.node.create_publisher(Image, TOPIC, image_qos())
    assert wait_for(lambda: probe.node.count_subscribers(TOPIC) > 0, 20), g.log("style_transfer")
    sent = publish_frames(probe, pub, 20)
    assert wait_for(lambda: len(out) >= 5, 20), g.log("style_transfer")
    first = out[0]
    assert (first.header.stamp.sec, first.header.stamp.nanosec) in sent
    assert first.header.frame_id == "test_optical_frame"
    assert (first.height, first.width, first.encoding) == (128, 160, "rgb8")
    assert len(first.data) == 128 * 160 * 3
    assert wait_for(lambda: states, 5)
    full = states[-1]
    assert full.retention_level == pytest.approx(1.0) and full.flops_fraction == pytest.approx(1.0)
    assert list(full.context_groups) == [16, 16]
    assert list(full.retention_levels) == pytest.approx([0.4, 0.7, 1.0])  # what a controller can step between

    res = probe.set_params("/style_transfer", retention=0.4)
    assert res[0].successful, res[0].reason
    states.clear()
    publish_frames(probe, pub, 10)
    assert wait_for(lambda: states, 10)
    pruned = states[-1]
    assert pruned.retention_requested == pytest.approx(0.4)
    assert pruned.retention_level == pytest.approx(0.4)
    assert pruned.flops_fraction < 0.6 * full.flops_fraction
    assert max(pruned.retention_per_stage) < 1.0
    assert list(pruned.context_groups) == [8, 8]

    # SCHED_FIFO on the inference thread: read its id from diagnostics and ask the kernel.
    assert wait_for(lambda: (diag_values(diags, "style_transfer: style") or {}).get("inference_thread_id"), 5)
    d = diag_values(diags, "style_transfer: style")
    tid = int(d["inference_thread_id"])
    assert os.sched_getscheduler(tid) == os.SCHED_FIFO
    assert os.sched_getparam(tid).sched_priority == graph.STYLE_PRIORITY
    assert d["sched_policy"] == "SCHED_FIFO" and d["backend"] == "onnxruntime"
    # where the frames' time went, per stage of the node's own path
    stages = {k: float(d[f"stage_{k}_p50_ms"]) for k in ("wait", "convert", "pre", "run", "post", "publish")}
    assert all(0 <= v < 5000 for v in stages.values()) and stages["run"] > 0, stages

    # a lower processing resolution still publishes frames of the camera's size
    assert probe.set_params("/style_transfer", resolution_scale=0.5)[0].successful
    out.clear()
    publish_frames(probe, pub, 10)
    assert wait_for(lambda: out, 10) and (out[-1].height, out[-1].width) == (128, 160)
    assert wait_for(lambda: (diag_values(diags, "style_transfer: style") or {}).get("resolution_scale") == "0.5", 5)
    assert diag_values(diags, "style_transfer: style")["model_input_scale"] == "1.0"


@pytest.mark.parametrize("batch", [False, True])
def test_two_camera_streams_each_get_their_stylized_output(probe, start_nodes, bundle, batch):
    """input_topics with two cameras (what the launch sets for cameras:=realsense,csi): each stream comes out
    on its own topic with its own header, and the pruning states name both cameras; with batch_streams, frames
    of both that wait together run in one network call and still come out each on its own topic."""
    from muon_ad_ros.msg import PruningState
    second = "/test_cam2/image_raw"
    spec = graph.NodeSpec("style_transfer", "style_transfer", "",
                          {"model_dir": bundle, "threads": 1, "input_topics": ["image", "image_1"],
                           "batch_streams": batch},
                          (("image", TOPIC), ("image_1", second)))
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    g = start_nodes([spec])
    outs = {0: probe.collect(Image, "/stylized/image_raw"), 1: probe.collect(Image, "/stylized/image_raw_1")}
    states = probe.collect(PruningState, "/stylized/pruning_state")
    pubs = {0: probe.node.create_publisher(Image, TOPIC, image_qos()),
            1: probe.node.create_publisher(Image, second, image_qos())}
    assert wait_for(lambda: probe.node.count_subscribers(TOPIC) > 0 and probe.node.count_subscribers(second) > 0,
                    20), g.log("style_transfer")
    frames_of = {0: "cam0_optical_frame", 1: "cam1_optical_frame"}
    for i in range(20):
        for k, pub in pubs.items():
            hdr = Header(frame_id=frames_of[k])
            hdr.stamp = probe.node.get_clock().now().to_msg()
            pub.publish(fill_image(Image(), frame(i + 50 * k), "rgb8", hdr))
        time.sleep(0.005 if batch else 0.05)     # pairs faster than the node takes them: both streams wait
    assert wait_for(lambda: len(outs[0]) >= 3 and len(outs[1]) >= 3, 20), g.log("style_transfer")
    assert {m.header.frame_id for m in outs[0]} == {frames_of[0]}
    assert {m.header.frame_id for m in outs[1]} == {frames_of[1]}
    assert wait_for(lambda: {m.header.frame_id for m in states} >= set(frames_of.values()), 5)
    assert wait_for(lambda: (diag_values(diags, "style_transfer: style") or {}).get("frames_batched"), 5)
    batched = int(diag_values(diags, "style_transfer: style")["frames_batched"])
    assert (batched > 0) == batch, batched


def test_bad_parameter_values_are_rejected_and_the_old_value_kept(probe, start_nodes, bundle, tmp_path):
    start_nodes([style_spec(bundle)])
    res = probe.set_params("/style_transfer", retention=0.2)
    assert not res[0].successful
    res = probe.set_params("/style_transfer", backend="cuda")
    assert not res[0].successful and "backend" in res[0].reason
    missing = str(tmp_path / "no_such_model")
    res = probe.set_params("/style_transfer", model_dir=missing)
    assert not res[0].successful and "no_such_model" in res[0].reason
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.json").write_text("{ not json")
    res = probe.set_params("/style_transfer", model_dir=str(corrupt))
    assert not res[0].successful and "corrupt" in res[0].reason
    assert probe.get_params("/style_transfer", "retention", "backend", "model_dir") == [1.0, "onnxruntime", bundle]


def test_malformed_frames_are_counted_and_the_next_good_frame_comes_out(probe, start_nodes, bundle):
    g = start_nodes([style_spec(bundle)])
    out = probe.collect(Image, "/stylized/image_raw")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    pub = probe.node.create_publisher(Image, TOPIC, image_qos(10))
    assert wait_for(lambda: probe.node.count_subscribers(TOPIC) > 0, 30), g.log("style_transfer")
    good = fill_image(Image(), frame(0), "rgb8", Header(frame_id="f"))
    # A first good frame proves the path is up before the malformed ones are counted.
    # Discovery is not symmetric: repeat until the node's side has matched this publisher too.
    def first_good():
        good.header.stamp = probe.node.get_clock().now().to_msg()
        pub.publish(good)
        return wait_for(lambda: out, 0.3)
    assert wait_for(first_good, 15), g.log("style_transfer")
    time.sleep(0.5)
    out.clear()
    bad = []
    for mutate in (lambda m: setattr(m, "encoding", "yuv422_weird"), lambda m: setattr(m, "step", 3),
                   lambda m: setattr(m, "height", 0), lambda m: setattr(m, "data", bytes(m.data[:100])),
                   lambda m: setattr(m, "width", 100000)):
        m = fill_image(Image(), frame(0), "rgb8", Header(frame_id="bad"))
        mutate(m)
        bad.append(m)
    for m in bad:
        pub.publish(m)
        time.sleep(0.1)
    good.header.stamp = probe.node.get_clock().now().to_msg()
    for _ in range(5):
        pub.publish(good)
        time.sleep(0.1)
    assert wait_for(lambda: out, 10), g.log("style_transfer")
    assert all(o.header.frame_id == "f" for o in out)
    assert wait_for(lambda: int((diag_values(diags, "style_transfer: style") or {}).get("frames_bad", 0)) >= 5, 5)
    d = diag_values(diags, "style_transfer: style")
    assert {k for k in d if k.startswith("bad_")} >= {"bad_encoding", "bad_step", "bad_size", "bad_data_length"}
    assert g.alive()["style_transfer"]


def test_refused_sched_fifo_falls_back_with_a_warning(probe, start_nodes, bundle):
    """Without CAP_SYS_NICE and with RLIMIT_RTPRIO 0 (an unprivileged robot user) the node runs normally."""
    import shutil
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_SYS_NICE")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    out = probe.collect(Image, "/stylized/image_raw")
    g = start_nodes([style_spec(bundle)], prefix=["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice",
                                                  "prlimit", "--rtprio=0", "--"])
    assert wait_for(lambda: probe.node.count_subscribers(TOPIC) > 0, 20), g.log("style_transfer")
    cam = Camera(probe, TOPIC, 128, 160, rate=10.0)
    try:
        assert wait_for(lambda: out, 10), g.log("style_transfer")
        assert wait_for(lambda: (diag_values(diags, "style_transfer: style") or {}).get("level") == 1, 5)
        d = diag_values(diags, "style_transfer: style")
    finally:
        cam.stop()
    assert d["sched_policy"] == "SCHED_OTHER" and "refused" in d["sched_note"], d
    assert "RLIMIT_RTPRIO=0" in d["message"]
    assert os.sched_getscheduler(int(d["inference_thread_id"])) == os.SCHED_OTHER


def test_realtime_request_granted_then_refused_keeps_the_stream_going(probe, start_nodes, bundle):
    """Without CAP_SYS_NICE and with RLIMIT_RTPRIO 0: normal scheduling (priority 0) is granted (INFO),
    SCHED_FIFO 80 refused (WARN), 0 granted again, 80 refused again, all from the inference thread's one
    call site. rclpy refuses a second severity at one call site, which would end the inference thread.
    (A SCHED_FIFO grant followed by a refusal needs RLIMIT_RTPRIO raised above 0, which takes
    CAP_SYS_RESOURCE; the development containers lack it.)"""
    import shutil
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_SYS_NICE")
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    out = probe.collect(Image, "/stylized/image_raw")
    g = start_nodes([style_spec(bundle, sched_priority=0)],
                    prefix=["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "prlimit", "--rtprio=0",
                            "--"])
    assert wait_for(lambda: probe.node.count_subscribers(TOPIC) > 0, 20), g.log("style_transfer")
    cam = Camera(probe, TOPIC, 128, 160, rate=10.0)

    def status() -> dict:
        return diag_values(diags, "style_transfer: style") or {}

    def frames_flow() -> bool:
        n = len(out)
        return bool(wait_for(lambda: len(out) >= n + 3, 10))

    try:
        assert wait_for(lambda: status().get("sched_requested") == "0", 20), g.log("style_transfer")
        assert frames_flow(), g.log("style_transfer")
        for priority, refused in ((80, True), (0, False), (80, True)):
            assert probe.set_params("/style_transfer", sched_priority=priority)[0].successful
            assert wait_for(lambda: status().get("sched_requested") == str(priority)
                            and ("refused" in status().get("sched_note", "")) == refused, 10), (priority, status())
            assert status()["sched_policy"] == "SCHED_OTHER"
            assert frames_flow(), (priority, g.log("style_transfer"))
    finally:
        cam.stop()
    log = g.log("style_transfer")
    assert "Logger severity cannot be changed" not in log and "Traceback" not in log, log
    assert "[WARN]" in log and "SCHED_FIFO 80 refused" in log and g.alive()["style_transfer"]


def test_stale_camera_reports_stale_then_recovers(probe, start_nodes, bundle):
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    out = probe.collect(Image, "/stylized/image_raw")
    g = start_nodes([style_spec(bundle, stale_timeout=1.0)])
    pub = probe.node.create_publisher(Image, TOPIC, image_qos())
    assert wait_for(lambda: probe.node.count_subscribers(TOPIC) > 0, 30), g.log("style_transfer")
    publish_frames(probe, pub, 5)
    assert wait_for(lambda: out, 10)
    stopped = time.monotonic()
    assert wait_for(lambda: (diag_values(diags, "style_transfer: style") or {}).get("level") == 3, 4)
    assert time.monotonic() - stopped <= 2.5
    out.clear()
    resumed = time.monotonic()
    publish_frames(probe, pub, 10, period=0.05)
    assert wait_for(lambda: out, 5) and time.monotonic() - resumed <= 1.5


def test_missing_model_at_start_reports_error_and_recovers_when_a_valid_path_is_set(probe, start_nodes, bundle,
                                                                                     tmp_path):
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    out = probe.collect(Image, "/stylized/image_raw")
    missing = str(tmp_path / "gone")
    g = start_nodes([style_spec(missing)])
    assert wait_for(lambda: (diag_values(diags, "style_transfer: style") or {}).get("level") == 2, 15), \
        g.log("style_transfer")
    d = diag_values(diags, "style_transfer: style")
    assert "gone" in d["message"] and g.alive()["style_transfer"]
    assert "gone" in g.log("style_transfer")
    assert probe.set_params("/style_transfer", model_dir=bundle)[0].successful
    cam = Camera(probe, TOPIC, 128, 160, rate=10.0)
    try:
        assert wait_for(lambda: out, 10), g.log("style_transfer")
        assert wait_for(lambda: (diag_values(diags, "style_transfer: style") or {}).get("level") == 0, 5)
    finally:
        cam.stop()


def test_tensorrt_without_a_gpu_falls_back_to_onnxruntime_with_a_warning(probe, start_nodes, bundle):
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    out = probe.collect(Image, "/stylized/image_raw")
    g = start_nodes([style_spec(bundle, backend="tensorrt")])
    cam = Camera(probe, TOPIC, 128, 160, rate=10.0)
    try:
        assert wait_for(lambda: out, 15), g.log("style_transfer")
        assert wait_for(lambda: (diag_values(diags, "style_transfer: style") or {}).get("level") == 1, 5)
    finally:
        cam.stop()
    d = diag_values(diags, "style_transfer: style")
    assert d["backend"] == "onnxruntime" and "fell back" in d["message"], d


def test_incompatible_qos_is_logged_naming_both_sides(probe, start_nodes, bundle):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    g = start_nodes([style_spec(bundle)])
    assert wait_for(lambda: probe.node.count_publishers("/stylized/image_raw") > 0, 20), g.log("style_transfer")
    # RViz's default: a RELIABLE subscriber, which a best-effort publisher cannot serve.
    probe.node.create_subscription(Image, "/stylized/image_raw", lambda m: None,
                                   QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    assert wait_for(lambda: "incompatible QoS on /stylized/image_raw" in g.log("style_transfer"), 10), \
        g.log("style_transfer")
    line = next(s for s in g.log("style_transfer").splitlines() if "incompatible QoS" in s)
    assert "style_transfer" in line and probe.node.get_name() in line and "RELIABILITY" in line.upper()
    assert "BEST_EFFORT" in line and "RELIABLE" in line


def test_frames_of_another_size_than_the_engines_are_warned_of(bundle):
    """A fixed-shape backend (TensorRT; the ONNX Runtime backend stands in) resizes such frames: the style
    node's diagnostics name both sizes and the parameters that match them."""
    from types import SimpleNamespace

    from muon_ad_ros.nodes.style_transfer import StyleTransferNode
    from muon_ad_ros.runtime.style import open_style_backend
    be = open_style_backend("onnxruntime", bundle, threads=1)
    node = SimpleNamespace(frame_hw=(720, 1280))
    assert StyleTransferNode._engine_size_note(node, be) == ""      # any frame size runs as it is
    be.frame_hw = (480, 640)
    note = StyleTransferNode._engine_size_note(node, be)
    assert "1280x720 frames are resized to the 640x480" in note and "engine_width" in note
    node.frame_hw = (480, 640)
    assert StyleTransferNode._engine_size_note(node, be) == ""
