"""The graph's transport as other ROS 2 processes meet it: a process started without any Fast DDS
variable (RViz, the ros2 CLI, realsense2_camera start that way) discovers the nodes, reads their
parameters and receives their 640x480 images; a subscription whose publisher is listed but delivers
nothing is reported on /diagnostics and recreated."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from conftest import TIMEOUT_SCALE, Camera, diag_values, wait_for
from muon_ad_ros import graph
from muon_ad_ros.bench.transport import FASTDDS_VARS

PEER = str(Path(__file__).with_name("peer_process.py"))
TOPIC = "/test_cam/image_raw"


def default_env() -> dict:
    """Returns this environment as a default ROS 2 process has it: no Fast DDS transport variable."""
    return {k: v for k, v in os.environ.items() if k not in FASTDDS_VARS}


def test_transport_profile_is_shipped_and_set_for_nodes():
    env = graph.node_env({})
    assert Path(env[graph.PROFILE_VAR]).is_file()
    assert "<segment_size>" in Path(env[graph.PROFILE_VAR]).read_text()
    assert "FASTDDS_BUILTIN_TRANSPORTS" not in env


def test_fast_dds_2_distributions_get_the_profile_under_its_older_name_too():
    humble = graph.transport_env({"ROS_DISTRO": "humble"})
    assert humble[graph.LEGACY_PROFILE_VAR] == humble[graph.PROFILE_VAR] == str(graph.transport_profile())
    assert graph.LEGACY_PROFILE_VAR not in graph.transport_env({"ROS_DISTRO": "kilted"})
    mine = graph.transport_env({graph.LEGACY_PROFILE_VAR: "/etc/my.xml", "ROS_DISTRO": "jazzy"})
    assert mine[graph.PROFILE_VAR] == mine[graph.LEGACY_PROFILE_VAR] == "/etc/my.xml"


def test_default_environment_process_discovers_the_graph_and_receives_its_images(probe, start_nodes):
    g = start_nodes([graph.NodeSpec("style_transfer", "style_transfer", "", {"threads": 1},
                                    (("image", TOPIC),))])
    cam = Camera(probe, TOPIC, 480, 640, rate=15.0)
    try:
        seconds = 12.0 * TIMEOUT_SCALE
        out = subprocess.run([sys.executable, PEER, "observe", "--seconds", str(seconds)], env=default_env(),
                             capture_output=True, text=True, timeout=seconds + 60)
    finally:
        cam.stop()
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    log = g.log("style_transfer")
    assert r["discovered_s"] is not None, f"the default process never listed the node: {r}\n{log}"
    assert r["retention"] == 1.0, r
    assert r["images"] > 10, f"few stylized frames reached the default process: {r}\n{log}"
    assert r["missing"] <= 0.01 * r["expected"], f"more than 1 % of the stylized frames lost: {r}"


def test_listed_publisher_that_delivers_nothing_is_reported_and_recreated(probe, start_nodes):
    """A camera process stopped with SIGSTOP stays listed in the graph (its DDS lease runs 20 s) and
    delivers nothing: the style node reports its input cut off, recreates the subscription, and frames
    flow through the new one once the camera continues."""
    g = start_nodes([graph.NodeSpec("style_transfer", "style_transfer", "", {"threads": 1, "stale_timeout": 1.0},
                                    (("image", TOPIC),))])
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    out = probe.collect(Image, "/stylized/image_raw")
    cam = subprocess.Popen([sys.executable, PEER, "camera", "--topic", TOPIC, "--seconds", "300"], env=os.environ.copy())
    links = lambda: diag_values(diags, "style_transfer: links") or {}     # noqa: E731
    try:
        assert wait_for(lambda: len(out) >= 3, 30), g.log("style_transfer")
        assert wait_for(lambda: links().get("level") == 0, 10), links()
        cam.send_signal(signal.SIGSTOP)
        d = wait_for(lambda: links() if links().get("level") == 2 else None, 15)
        assert d, f"{links()}\n{g.log('style_transfer')}"
        assert TOPIC in d["message"] and "/peer_camera" in d["message"] and "/style_transfer" in d["message"], d
        assert int(d[f"recreated subscription {TOPIC}"]) >= 1, d
        n = len(out)
        cam.send_signal(signal.SIGCONT)
        assert wait_for(lambda: len(out) >= n + 3, 30), f"{links()}\n{g.log('style_transfer')}"
        assert wait_for(lambda: links().get("level") == 0, 15), links()
    finally:
        cam.send_signal(signal.SIGCONT)
        cam.kill()
        cam.wait()


def test_a_publisher_that_has_not_sent_yet_gets_a_grace_period(probe):
    """A camera lists its publisher before its device is open: no sample yet is a cut-off only after
    FIRST_SAMPLE_GRACE x the timeout; once samples flowed, silence counts after the timeout itself."""
    import time

    import rclpy

    from muon_ad_ros.nodes.links import FIRST_SAMPLE_GRACE, Link
    from muon_ad_ros.nodes.qos import image_qos
    other = rclpy.create_node("grace_camera", context=probe.context)
    probe.executor.add_node(other)
    # the Link alone, without the monitor's timer, so nothing recreates it between the checks
    link = Link(probe.node, "subscription", Image, "/grace/image", image_qos(), lambda m: None, expect_data=True)
    pub = other.create_publisher(Image, "/grace/image", image_qos())
    assert wait_for(lambda: link.matched() == 1, 10)
    assert link.problem(0.2)[0] == ""                       # matched just now, nothing sent yet
    time.sleep(0.3)
    assert link.problem(0.2)[0] == ""                       # past the timeout, inside the grace
    time.sleep(FIRST_SAMPLE_GRACE * 0.2)
    assert link.problem(0.2)[0].startswith("matched, but no sample")
    pub.publish(Image(height=1, width=1, encoding="rgb8", step=3, data=b"\0\0\0"))
    assert wait_for(lambda: link.received, 10)
    assert link.problem(0.2)[0] == ""
    time.sleep(0.3)                                         # samples flowed, then stopped: the timeout
    assert link.problem(0.2)[0].startswith("matched, but no sample"), link.problem(0.2)
