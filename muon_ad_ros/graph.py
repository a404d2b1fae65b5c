"""The one description of the edge graph: nodes, executables, parameters, remaps, QoS transport
settings and priorities. launch/edge.launch.py, the launch-free runner (muon_ad_ros.launcher) and the
tests all read it, because launch/launch_ros cannot be installed on the development machines."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from muon_ad_ros import distro
from muon_ad_ros.params import NODE_KINDS, node_params



def transport_profile() -> Path:
    """Returns the Fast DDS profile of the graph (config/fastdds.xml): shared memory with a segment that
    holds whole frames, plus UDPv4. Images travel as sensor-data QoS (best effort); through Fast DDS's
    default 512 KiB segment a 640x480 frame falls back to UDP fragments and one lost fragment drops it,
    while this profile's publishers reach default ROS 2 processes whole (docs/transport.md has the
    measurements)."""
    return config_file("fastdds.xml")


def config_file(name: str) -> Path:
    """Returns a file of the package's config/ folder (the source tree's, else the installed share)."""
    source_tree = Path(__file__).resolve().parent.parent / "config" / name
    if source_tree.exists():
        return source_tree
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory("muon_ad_ros")) / "config" / name


def rviz_config(namespace: str = "", cameras: tuple[str, ...] = ("realsense",), style_input: str = "") -> str:
    """Returns config/edge.rviz for this graph: the camera display shows the graph's input topic and every
    topic carries the namespace (RViz takes topics as written). The fixed frame, base_link, is the parent
    of every camera's TF (parent_frame_id), whichever camera runs."""
    text = config_file("edge.rviz").read_text()
    text = text.replace(f"Value: {CAMERA_TOPIC}\n", f"Value: {camera_topic(cameras, style_input)}\n")
    return re.sub(r"^(\s+Value: )(/\S+)$", lambda m: m.group(1) + _ns(namespace, m.group(2)), text, flags=re.M)


def camera_topic(cameras: tuple[str, ...], style_input: str = "") -> str:
    """Returns the image topic the graph stylizes and detects in (without the namespace)."""
    return style_input or (CAMERA_TOPIC if "realsense" in cameras else CSI_TOPIC)


def transport_env(environ: dict | None = None) -> dict:
    """Returns the environment variables of the graph's transport: the graph's profile (or one the user named)
    under the variable the installed Fast DDS reads, and the rmw (distro.transport_env)."""
    return distro.transport_env(str(transport_profile()), environ)


CAMERA_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
CSI_TOPIC = "/csi/image_raw"
STYLE_PRIORITY = 80       # SCHED_FIFO priority of the style inference thread
DETECTION_NICE = 5        # detection ranks below style: normal scheduling, lower nice priority
# Detection rate_limit (Hz) in the edge graph (0 = every frame its worker can take): at a 30 Hz camera on 2 cores
# the COCO SSD then gave 9.4-11.6 detections/s beside the style node (docs/benchmarks.md, edge graph).
DETECTION_RATE = 12.0
DETECTION_BACKEND = "onnxruntime"   # with no detection_model: the bundled SSD MobileNet-v2 COCO
# One intra-op thread beside the style node: on 2 cores, two detection threads contended with style for both
# cores (docs/benchmarks.md, edge graph with the COCO SSD).
DETECTION_THREADS = 1


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph as `ros2 run` / launch_ros / the runner start it."""

    name: str
    kind: str                                   # executable name == module muon_ad_ros.nodes.<kind>
    namespace: str = ""
    parameters: dict = field(default_factory=dict)
    remaps: tuple[tuple[str, str], ...] = ()

    @property
    def executable(self) -> str:
        """Returns the executable installed in lib/muon_ad_ros."""
        return self.kind

    @property
    def module(self) -> str:
        """Returns the Python module that runs this node."""
        return f"muon_ad_ros.nodes.{self.kind}"

    @property
    def fqn(self) -> str:
        """Returns the fully qualified node name."""
        ns = "/" + self.namespace.strip("/") if self.namespace.strip("/") else ""
        return f"{ns}/{self.name}"

    def full_parameters(self) -> dict:
        """Returns every parameter of the node: defaults overlaid with this graph's settings."""
        params, _ = node_params(self.kind)
        return {p.name: p.default for p in params} | dict(self.parameters)


def _ns(namespace: str, topic: str) -> str:
    ns = namespace.strip("/")
    return f"/{ns}{topic}" if ns and topic.startswith("/") else topic


def edge_graph(cameras: tuple[str, ...] = ("realsense",), *, namespace: str = "",
               recording: str = "", realsense_serial: str = "", csi_source: str = "",
               camera_fps: float = 30.0, width: int = 640, height: int = 480,
               style_model: str = "", style_backend: str = "onnxruntime", style_priority: int = STYLE_PRIORITY,
               detection: bool = True, detection_backend: str = DETECTION_BACKEND, detection_model: str = "",
               detection_rate: float = DETECTION_RATE,
               controller_mode: str = "manual", target_fps: float = 24.0,
               style_input: str = "", style_input_2: str = "") -> list[NodeSpec]:
    """Returns the node specs of the edge graph for these launch arguments.

    cameras: any of "realsense", "csi"; none = subscribe to existing topics (style_input, e.g.
    realsense2_camera's /camera/camera/color/image_raw). style_input_2: a second camera topic for the style
    node (stylized on stylized/image_raw_1); with both cameras and no style_input it is the CSI camera's."""
    for cam in cameras:
        if cam not in ("realsense", "csi"):
            raise ValueError(f"unknown camera {cam!r}; use realsense, csi or none")
    nodes: list[NodeSpec] = []
    if "realsense" in cameras:
        nodes.append(NodeSpec("realsense_camera", "realsense_camera", _join(namespace, "camera"), {
            "recording": recording, "serial": realsense_serial, "width": width, "height": height,
            "fps": float(camera_fps)}))
    if "csi" in cameras:
        nodes.append(NodeSpec("csi_camera", "csi_camera", _join(namespace, "csi"), {
            "source": csi_source, "width": width, "height": height, "fps": float(camera_fps)}))
    source = _ns(namespace, camera_topic(cameras, style_input))
    style = {"model_dir": style_model, "backend": style_backend, "sched_priority": int(style_priority)}
    if style_backend == "tensorrt":
        # engines have one frame size: the cameras' (an external topic of another size is resized and warned of)
        style |= {"engine_width": int(width), "engine_height": int(height)}
    style_remaps = [("image", source)]
    if not style_input and len(cameras) == 2:
        style_input_2 = CSI_TOPIC
    if style_input_2:
        # two cameras into the one style node (latest frame of each, round robin); the second stream's
        # output is stylized/image_raw_1. Detection and depth stay on the first camera.
        style["input_topics"] = ["image", "image_1"]
        style_remaps.append(("image_1", _ns(namespace, style_input_2)))
    nodes.append(NodeSpec("style_transfer", "style_transfer", namespace, style, tuple(style_remaps)))
    if detection:
        nodes.append(NodeSpec("detection", "detection", namespace, {
            "backend": detection_backend, "model_path": detection_model, "rate_limit": float(detection_rate),
            "threads": DETECTION_THREADS},
            (("image", source),)))
    ctrl = {"mode": controller_mode, "target_fps": float(target_fps),
            "detection_node": "detection" if detection else "", "detection_rate_max": float(detection_rate)}
    depth = _ns(namespace, DEPTH_TOPIC) if "realsense" in cameras else _ns(namespace, "/depth_unavailable")
    nodes.append(NodeSpec("controller", "controller", namespace, ctrl, (("depth", depth),)))
    for n in nodes:
        assert n.kind in NODE_KINDS
    return nodes


def _join(namespace: str, sub: str) -> str:
    ns = namespace.strip("/")
    return f"{ns}/{sub}" if ns else sub


def node_env(base: dict | None = None) -> dict:
    """Returns the environment a node process needs (the transport settings added)."""
    env = dict(os.environ if base is None else base)
    for k, v in transport_env(env).items():
        env.setdefault(k, v)
    return env
