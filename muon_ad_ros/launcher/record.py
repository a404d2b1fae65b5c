"""Records what the graph publishes into an MCAP file that `ros2 bag` (rosbag2's MCAP storage) and
Foxglove open: the stylized and annotated images (their /compressed twins by default, the raw images
with --raw-images), the camera image, detections, markers, pruning state, /diagnostics and /tf_static.

Messages are written as received, CDR-serialized (rclpy raw subscriptions: nothing is decoded), on
channels with rosbag2's conventions: profile "ros2", schema encoding "ros2msg" holding the full
message definition (every nested type after a separator, as rosbag2 writes it), message encoding "cdr".

  python -m muon_ad_ros.launcher.cli record --out graph.mcap --seconds 30 [--namespace robot1]
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from muon_ad_ros.launcher import supervise

SEPARATOR = "=" * 80
PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}


def _msg_file(pkg: str, name: str) -> Path:
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory(pkg)) / "msg" / f"{name}.msg"


def _field_types(text: str, pkg: str) -> list[str]:
    """Returns the non-primitive field types ("pkg/Type") of a .msg definition."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or "=" in parts[1]:
            continue        # a constant
        base = re.sub(r"(\[[^\]]*\])?$", "", parts[0])
        base = re.sub(r"<=\d+$", "", base)
        if base in PRIMITIVES or base.startswith(("string<=", "wstring<=")):
            continue
        if base == "Header":
            out.append("std_msgs/Header")
        elif "/" in base:
            p, n = base.split("/")[0], base.split("/")[-1]
            out.append(f"{p}/{n}")
        else:
            out.append(f"{pkg}/{base}")
    return out


def message_definition(type_name: str) -> str:
    """Returns the ros2msg schema of "pkg/msg/Type": its .msg text, then each nested type once as
    "=====...\\nMSG: pkg/Type\\n<its .msg text>" (rosbag2's and Foxglove's format)."""
    pkg, _, name = type_name.split("/")
    main = _msg_file(pkg, name).read_text()
    seen, order, todo = set(), [], _field_types(main, pkg)
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        p, n = dep.split("/")
        text = _msg_file(p, n).read_text()
        order.append((dep, text))
        todo += _field_types(text, p)
    return main.rstrip("\n") + "".join(f"\n{SEPARATOR}\nMSG: {dep}\n{text.rstrip(chr(10))}" for dep, text in order) + "\n"


def graph_topics(namespace: str = "", camera_topic: str = "/camera/color/image_raw",
                 raw_images: bool = False) -> list[tuple[str, str, str]]:
    """Returns (topic, type, qos kind) of what the graph publishes that a recording keeps (the camera
    image too unless camera_topic is empty)."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    images = [f"{ns}/stylized/image_raw", f"{ns}/detections/image_annotated"] + ([f"{ns}{camera_topic}"]
                                                                                 if camera_topic else [])
    if raw_images:
        topics = [(t, "sensor_msgs/msg/Image", "sensor") for t in images]
    else:
        topics = [(t + "/compressed", "sensor_msgs/msg/CompressedImage", "sensor") for t in images]
    return topics + [(f"{ns}/detections", "muon_ad_ros/msg/DetectionArray", "reliable"),
                     (f"{ns}/detections/markers", "visualization_msgs/msg/MarkerArray", "reliable"),
                     (f"{ns}/stylized/pruning_state", "muon_ad_ros/msg/PruningState", "reliable"),
                     ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", "reliable"),
                     ("/tf_static", "tf2_msgs/msg/TFMessage", "static")]


class Recorder:
    """An in-process node writing the graph's topics into an MCAP file until close()."""

    def __init__(self, path: str | Path, topics: list[tuple[str, str, str]], context=None):
        import importlib

        import rclpy
        from mcap.writer import CompressionType, Writer
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from muon_ad_ros.nodes.qos import image_qos, reliable_qos

        if context is None and not rclpy.ok():
            supervise.init_ros()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        self.writer = Writer(self._file, compression=CompressionType.ZSTD)
        self.writer.start(profile="ros2", library="muon_ad_ros")
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.node = rclpy.create_node("graph_recorder", context=context)
        qos = {"sensor": image_qos(10), "reliable": reliable_qos(50),
               "static": QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)}
        for topic, type_name, kind in topics:
            pkg, _, name = type_name.split("/")
            msg_type = getattr(importlib.import_module(f"{pkg}.msg"), name)
            schema = self.writer.register_schema(name=type_name, encoding="ros2msg",
                                                 data=message_definition(type_name).encode())
            channel = self.writer.register_channel(topic=topic, message_encoding="cdr", schema_id=schema)
            self.counts[topic] = 0
            self.node.create_subscription(msg_type, topic, lambda data, c=channel, t=topic: self._write(c, t, data),
                                          qos[kind], raw=True)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._running = True
        self._spin = threading.Thread(target=self._spin_loop, name="recorder", daemon=True)
        self._spin.start()

    def _spin_loop(self):
        while self._running:
            self.executor.spin_once(timeout_sec=0.1)

    def _write(self, channel: int, topic: str, data: bytes):
        now = time.time_ns()
        with self.lock:
            if self._file.closed:
                return
            self.writer.add_message(channel_id=channel, log_time=now, publish_time=now, data=bytes(data),
                                    sequence=self.counts[topic])
            self.counts[topic] += 1

    def close(self) -> dict[str, int]:
        """Returns messages written per topic after finishing the file."""
        self._running = False
        self._spin.join(timeout=2.0)
        self.executor.shutdown()
        with self.lock:   # the file is complete before the DDS teardown, which close_ros may cut short
            self.writer.finish()
            self._file.close()
        from muon_ad_ros.nodes.spin import close_ros
        close_ros(self.node, shutdown=False)   # the context is the caller's
        return dict(self.counts)


def record(a) -> int:
    """`record`: writes the graph's topics for a.seconds (until Ctrl-C when 0) into a.out."""
    from muon_ad_ros import graph
    cams = tuple(c for c in a.cameras.split(",") if c and c != "none")
    topics = graph_topics(a.namespace, graph.camera_topic(cams, a.style_input), a.raw_images)
    rec = Recorder(a.out, topics)
    print(f"recording {len(topics)} topics into {a.out}" + (f" for {a.seconds:g} s" if a.seconds else
                                                                 "; Ctrl-C stops"), flush=True)
    try:
        end = time.monotonic() + a.seconds if a.seconds else float("inf")
        while time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    counts = rec.close()
    print("\n".join(f"  {t}: {n}" for t, n in counts.items()))
    return 0 if any(counts.values()) else 1
