"""Stopping node processes the way a terminal and `ros2 launch` do: SIGINT reaches every node twice
(the terminal's and launch's), then SIGTERM. Each node ends with exit code 0, without a traceback,
with its threads joined and its inference session closed, and publishes nothing on an invalid context."""
from __future__ import annotations

import signal
import time

import pytest
from sensor_msgs.msg import Image

from conftest import wait_for
from muon_ad_ros import graph
from muon_ad_ros.camera import recording as rec
from muon_ad_ros.msg import DetectionArray

BAD = ("Traceback", "KeyboardInterrupt", "context is invalid", "threads still running", "Exception")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    people = [s for s in rec.bundled_scenes() if s.name.startswith("street")][:1]
    return str(rec.make_recording(tmp_path_factory.mktemp("rec") / "edge.db3", people, 640, 480, 30, 30))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from bundle_helpers import tiny_bundle
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


def test_sigint_twice_then_sigterm_ends_every_node_cleanly(probe, start_nodes, recording, bundle):
    specs = graph.edge_graph(("realsense",), recording=recording, style_model=bundle, controller_mode="target_fps")
    stylized = probe.collect(Image, "/stylized/image_raw")
    detections = probe.collect(DetectionArray, "/detections")
    g = start_nodes(specs)
    logs = lambda: {n: g.log(n)[-2000:] for n in g.procs}  # noqa: E731
    # Every worker is busy (camera capturing, style and detection inferring) when the signals land.
    assert wait_for(lambda: len(stylized) >= 5 and len(detections) >= 2, 60), logs()
    assert all(g.alive().values()), logs()

    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
        for p in g.procs.values():
            if p.poll() is None:
                p.send_signal(sig)
        time.sleep(0.05)     # the second signal arrives while the nodes close (the first is being handled)
    assert wait_for(lambda: not any(g.alive().values()), 15), logs()

    codes = {n: p.returncode for n, p in g.procs.items()}
    assert codes == {n: 0 for n in g.procs}, (codes, logs())
    for name in g.procs:
        log = g.log(name)
        assert not [b for b in BAD if b in log], (name, log[-3000:])
        assert "stopped on SIGINT" in log and "threads and inference sessions closed" in log, (name, log[-3000:])


def test_close_ros_ends_a_process_whose_dds_teardown_hangs():
    """close_ros bounds the teardown: a destroy_node that does not return (here a regular expression that
    backtracks for hours inside C code holding the GIL, as Fast DDS's livelock does) ends the process with
    its stacks on stderr instead of hanging it."""
    import subprocess
    import sys
    code = "\n".join([
        "import re, rclpy",
        "from muon_ad_ros.nodes.spin import close_ros",
        "rclpy.init()",
        "node = rclpy.create_node('stuck_teardown')",
        "node.destroy_node = lambda: re.match(r'(a+)+$', 'a' * 64 + 'b')",
        "print('results written', flush=True)",
        "close_ros(node, limit_s=1.0)",
        "print('not reached', flush=True)"])
    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 30
    assert run.returncode == 1 and run.stdout == "results written\n"
    assert "Timeout" in run.stderr and "close_ros" in run.stderr


def test_close_ros_writes_the_stacks_of_a_hung_teardown_to_the_file_given(tmp_path):
    """The test probe's teardown runs inside pytest, which loses stderr when the process ends: the stacks go
    to the file it names instead."""
    import subprocess
    import sys
    stacks = tmp_path / "stacks.txt"
    code = "\n".join([
        "import re, rclpy",
        "from muon_ad_ros.nodes.spin import close_ros",
        "rclpy.init()",
        "node = rclpy.create_node('stuck_teardown_file')",
        "node.destroy_node = lambda: re.match(r'(a+)+$', 'a' * 64 + 'b')",
        f"close_ros(node, limit_s=1.0, stacks=open({str(stacks)!r}, 'w'))"])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Timeout" not in run.stderr
    text = stacks.read_text()
    assert "Timeout" in text and "close_ros" in text
