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
from muon_ad_ros import distro, graph
from muon_ad_ros.bench.transport import FASTDDS_VARS

PEER = str(Path(__file__).with_name("peer_process.py"))
TOPIC = "/test_cam/image_raw"


def default_env() -> dict:
    """Returns this environment as a default ROS 2 process has it: no Fast DDS transport variable."""
    return {k: v for k, v in os.environ.items() if k not in FASTDDS_VARS}


def test_transport_profile_is_set_under_the_variable_the_installed_fast_dds_reads():
    reads = distro.fastdds_reads(distro.fastdds_library())
    assert reads is not None, "no Fast DDS library found beside this rclpy"
    env = graph.node_env({})
    set_vars = [v for v in distro.PROFILE_VARS if v in env]
    assert set_vars and all(reads[v] for v in set_vars), (set_vars, reads)
    assert Path(env[set_vars[0]]).is_file() and "<segment_size>" in Path(env[set_vars[0]]).read_text()
    assert distro.BUILTIN_TRANSPORTS_VAR not in env
    # a profile the user named under either name is kept, and set under the name this Fast DDS reads
    for var in distro.PROFILE_VARS:
        mine = graph.transport_env({var: "/etc/my.xml"})
        assert [mine[v] for v in set_vars] == ["/etc/my.xml"] * len(set_vars), (var, mine)


def profile_check_in_process(env: dict) -> dict:
    """Returns what distro.profile_check finds in a fresh process with this environment and one node."""
    code = ("import json, rclpy; from muon_ad_ros import distro; rclpy.init(); n = rclpy.create_node('shm_check'); "
            "ok, msg, v = distro.profile_check(rclpy.get_rmw_implementation_identifier()); "
            "print(json.dumps({'ok': ok, 'message': msg, **v})); n.destroy_node(); rclpy.shutdown()")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_profile_takes_effect_and_a_profile_fast_dds_ignores_is_an_error():
    """The shipped profile's 32 MiB shared-memory segment is in effect in a process started with the graph's
    environment. Set under only the variable the installed Fast DDS does not read, Fast DDS 2.x (Humble,
    Jazzy) runs its defaults: the check says so, naming the variable to set. (Kilted's rmw reads the old
    name for Fast DDS 3 and warns, so there the profile still takes effect.)"""
    profile = str(graph.transport_profile())
    want = distro.profile_segment_size(profile)
    assert want == 32 * 2**20
    good = profile_check_in_process({**default_env(), **graph.transport_env(default_env())})
    assert good["ok"], good
    assert int(good["shm_segments"].split("=")[-1]) >= want, good
    reads = distro.fastdds_reads(distro.fastdds_library())
    unread = [v for v in distro.PROFILE_VARS if not reads[v]]
    assert len(unread) == 1, reads
    bad = profile_check_in_process({**default_env(), unread[0]: profile})
    sizes = [int(x.split("=")[1]) for x in bad.get("shm_segments", "").split(", ") if "=" in x]
    assert bad["ok"] == (min(sizes) >= want), bad          # the verdict is the segment's
    if unread[0] == distro.PROFILE_VAR:                     # Fast DDS 2.x
        assert not bad["ok"] and f"set {distro.LEGACY_PROFILE_VAR}" in bad["message"], bad
    nothing = profile_check_in_process(default_env())
    assert not nothing["ok"] and "no Fast DDS profile" in nothing["message"], nothing


def test_nodes_report_the_transport_profile_on_diagnostics(probe, start_nodes):
    """Every node's /diagnostics has `<node>: transport`: OK with the profile in effect; ERROR in a process
    whose environment names the profile only where this Fast DDS does not look (Fast DDS 2.x)."""
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    spec = graph.NodeSpec("controller", "controller", "", {})
    start_nodes([spec])
    d = wait_for(lambda: diag_values(diags, "controller: transport"), 20)
    assert d and d["level"] == 0 and "in effect" in d["message"], d
    reads = distro.fastdds_reads(distro.fastdds_library())
    if reads[distro.PROFILE_VAR]:
        return      # Fast DDS 3: its rmw also reads the old name, so no variable leaves the profile unread
    # the runner sets the variable Fast DDS reads; `env -u` takes it away again, as in a shell that names the
    # profile under the other name only
    env = {**default_env(), distro.PROFILE_VAR: str(graph.transport_profile())}
    start_nodes([graph.NodeSpec("controller", "controller", "ns2", {})], env=env,
                prefix=["env", "-u", distro.LEGACY_PROFILE_VAR])
    d = wait_for(lambda: diag_values(diags, "ns2/controller: transport"), 20)
    assert d and d["level"] == 2 and "not in effect" in d["message"], d


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
    # Humble's subscriptions cannot count matched publishers (None): there the link goes by the graph's listing
    assert wait_for(lambda: link.peers() and link.matched() in (1, None), 10)
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
