"""Shared fixtures: a private DDS domain per test session, an in-process rclpy probe node, and
node processes started from the graph description (muon_ad_ros.graph / runner)."""
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

# Concurrent test runs on one machine must not hear each other's nodes.
if "MUON_AD_ROS_TEST_DOMAIN" not in os.environ:
    os.environ["MUON_AD_ROS_TEST_DOMAIN"] = str(random.Random(os.getpid()).randint(20, 100))
os.environ["ROS_DOMAIN_ID"] = os.environ["MUON_AD_ROS_TEST_DOMAIN"]
# The test process is a graph process: same transport profile as the nodes (tests that play a default
# ROS 2 process start one without it).
for _k, _v in __import__("muon_ad_ros.graph", fromlist=["transport_env"]).transport_env().items():
    os.environ.setdefault(_k, _v)

# Every wait in these tests ends as soon as its condition holds; the scale only lengthens a failing one
# (a loaded 2-core CI machine runs node start-up, discovery and inference side by side).
TIMEOUT_SCALE = float(os.environ.get("MUON_AD_TEST_TIMEOUT_SCALE", "2"))
# where a test process's hung DDS teardown writes its stacks before ending the run (Probe.close; the Makefile
# prints it when pytest fails)
TEARDOWN_STACKS = Path(__file__).resolve().parent.parent / "log" / "test_teardown_stacks.txt"


def wait_for(predicate, timeout: float = 10.0, period: float = 0.05):
    """Returns predicate()'s first truthy value, or its last value after `timeout` x TIMEOUT_SCALE seconds."""
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(period)
        value = predicate()
    return value


class Probe:
    """An rclpy node in the test process, spun in a background thread."""

    def __init__(self, name: str):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        # A DDS participant of its own per test. With one participant for the whole test session, 2 of
        # ~20 suite runs had a node started later stay undiscovered by it for all the 90 s waited (the
        # nodes idle in py-spy dumps). Not isolated: a script starting one node 95 times against fresh
        # participants and 25 times against one long-lived participant never showed it.
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._run = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self._run:
            self.executor.spin_once(timeout_sec=0.05)

    def collect(self, msg_type, topic: str, qos=None) -> list:
        """Returns a list that fills with messages received on `topic`."""
        from muon_ad_ros.nodes.qos import image_qos
        from sensor_msgs.msg import Image
        box: list = []
        qos = qos or (image_qos(5) if msg_type is Image else 10)
        self.node.create_subscription(msg_type, topic, box.append, qos)
        return box

    def set_params(self, node_fqn: str, timeout: float = 10.0, **values):
        """Returns the SetParameters results of setting `values` on a running node."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        client = self.node.create_client(SetParameters, f"{node_fqn}/set_parameters")
        assert client.wait_for_service(timeout * TIMEOUT_SCALE), f"{node_fqn} offers no set_parameters service"
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        future = self.call(client, req, timeout)
        assert future is not None, f"set_parameters on {node_fqn} timed out"
        self.node.destroy_client(client)
        return future.result().results

    def call(self, client, request, timeout: float, attempt_s: float = 2.0):
        """Returns the done future of `request`, sent again every attempt_s until timeout (None then).

        A server that has not yet matched this client's response reader drops the response after the
        response writer's max_blocking_time (100 ms; rmw_fastrtps logs "client will not receive
        response"), which happens to nodes started a moment ago on a loaded machine. Parameter get/set
        requests are idempotent, so sending one again is safe."""
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while True:
            future = client.call_async(request)
            if wait_for(future.done, attempt_s):
                return future
            client.remove_pending_request(future)
            if time.monotonic() >= deadline:
                return None

    def get_params(self, node_fqn: str, *names: str, timeout: float = 10.0) -> list:
        """Returns the current values of parameters of a running node."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        client = self.node.create_client(GetParameters, f"{node_fqn}/get_parameters")
        assert client.wait_for_service(timeout * TIMEOUT_SCALE), f"{node_fqn} offers no get_parameters service"
        future = self.call(client, GetParameters.Request(names=list(names)), timeout)
        assert future is not None, f"get_parameters on {node_fqn} timed out"
        self.node.destroy_client(client)
        return [parameter_value_to_python(v) for v in future.result().values]

    def close(self):
        from muon_ad_ros.nodes.spin import close_ros
        self._run = False
        self.thread.join(timeout=2.0)
        self.executor.shutdown()
        # A teardown that hangs (Fast DDS's livelock, nodes/spin.py) ends the whole test run with exit status 1;
        # pytest captures stderr and loses it then, so the stacks go to a file that `make test` prints.
        # 30 s, not the nodes' 5: a slow teardown on a loaded machine is not the hang this bound is for.
        TEARDOWN_STACKS.parent.mkdir(exist_ok=True)
        with open(TEARDOWN_STACKS, "w") as stacks:
            close_ros(self.node, self.context, limit_s=30.0, stacks=stacks)
        TEARDOWN_STACKS.unlink()


class Camera:
    """Publishes one rgb8 frame repeatedly at a settable rate from a thread, stamped at publication."""

    def __init__(self, probe, topic: str, h: int = 480, w: int = 640, rate: float = 30.0):
        import numpy as np
        from sensor_msgs.msg import Image

        from muon_ad_ros.nodes.qos import image_qos
        self.pub = probe.node.create_publisher(Image, topic, image_qos())
        self.clock = probe.node.get_clock()
        self.img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
        self.rate = rate
        self.run = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from muon_ad_ros.nodes.images import fill_image
        msg = Image()
        while self.run:
            hdr = Header(frame_id="cam")
            hdr.stamp = self.clock.now().to_msg()
            self.pub.publish(fill_image(msg, self.img, "rgb8", hdr))
            time.sleep(1.0 / self.rate)

    def stop(self):
        self.run = False
        self.thread.join()


@pytest.fixture
def probe(request):
    p = Probe("test_probe_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")[:40])
    yield p
    p.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that started node processes gets a py-spy thread dump of each live one in its
    report: a node that stops serving frames or services shows where its threads are."""
    outcome = yield
    rep = outcome.get_result()
    graphs = getattr(item, "muon_ad_graphs", [])
    if rep.when != "call" or not rep.failed or not graphs:
        return
    import shutil
    import subprocess
    spy = shutil.which("py-spy")
    for g in graphs:
        for name, p in g.procs.items():
            if p.poll() is not None:
                rep.sections.append((f"node {name}", f"exited with {p.returncode}"))
            elif spy:
                dump = subprocess.run([spy, "dump", "--pid", str(p.pid)], capture_output=True, text=True, timeout=60)
                rep.sections.append((f"py-spy dump of node {name}", dump.stdout + dump.stderr))


@pytest.fixture
def start_nodes(tmp_path, request):
    """Returns a function that starts graph.NodeSpec processes; all are stopped at teardown."""
    from muon_ad_ros.launcher.processes import GraphProcesses
    graphs = request.node.muon_ad_graphs = []

    def start(specs, env: dict | None = None, prefix: list[str] | None = None):
        # no check for running nodes of the same names: a test's graph is alone in the session's private
        # domain, and the check's seconds per start are left to the tests of it (test/launcher)
        g = GraphProcesses(list(specs), tmp_path / f"logs{len(graphs)}", env=env, name_check_s=0)
        if prefix:
            g.prefix = prefix
        graphs.append(g.start())
        return g

    yield start
    for g in graphs:
        g.stop()


def diag_values(diag_msgs: list, name: str) -> dict | None:
    """Returns {'level', 'message', values...} of the newest status called `name` in DiagnosticArrays."""
    for arr in reversed(list(diag_msgs)):
        for st in arr.status:
            if st.name == name:
                level = st.level if isinstance(st.level, int) else int.from_bytes(st.level, "little")
                return {"level": level, "message": st.message, **{v.key: v.value for v in st.values}}
    return None
