"""Starts the edge graph of graph.py as one process per node, as launch/edge.launch.py does on a ROS 2
machine: the command line and parameters file of each node, and the runner's graph arguments (every
argument of the launch file has a --flag twin)."""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from muon_ad_ros import graph


def params_yaml(spec: graph.NodeSpec) -> str:
    """Returns the ROS parameters file text for one node (its settings over the defaults)."""
    return yaml.safe_dump({spec.fqn: {"ros__parameters": spec.full_parameters()}}, sort_keys=False)


def node_command(spec: graph.NodeSpec, params_file: str, python: str = sys.executable) -> list[str]:
    """Returns the command line that runs one node like `ros2 run` with the launch file's settings."""
    cmd = [python, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}", "--params-file", params_file]
    if spec.namespace:
        cmd += ["-r", f"__ns:=/{spec.namespace.strip('/')}"]
    for src, dst in spec.remaps:
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


class GraphProcesses:
    """The graph's node processes; stop() ends them (SIGINT, then SIGTERM, then SIGKILL)."""

    stagger = 0.0       # seconds between node process starts (muon-ad bench startup --stagger compares)

    def __init__(self, specs: list[graph.NodeSpec], log_dir: str | Path | None = None, env: dict | None = None):
        self.specs = specs
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="muon_ad_ros_logs_"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = graph.node_env(env)
        self.prefix: list[str] = []     # e.g. setpriv ... to run the nodes without CAP_SYS_NICE

    def start(self) -> "GraphProcesses":
        for k, spec in enumerate(self.specs):
            if k and self.stagger:
                time.sleep(self.stagger)
            pfile = self.log_dir / f"{spec.name}.params.yaml"
            pfile.write_text(params_yaml(spec))
            log = open(self.log_dir / f"{spec.name}.log", "w")
            self.procs[spec.name] = subprocess.Popen(self.prefix + node_command(spec, str(pfile)), stdout=log,
                                                     stderr=subprocess.STDOUT, env=self.env,
                                                     start_new_session=True)
        return self

    def alive(self) -> dict[str, bool]:
        """Returns for each node whether its process still runs."""
        return {name: p.poll() is None for name, p in self.procs.items()}

    def log(self, name: str) -> str:
        """Returns what a node printed so far."""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def stop(self, timeout: float = 5.0) -> dict[str, int]:
        """Returns each node's exit code after asking it to stop."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            for p in self.procs.values():
                if p.poll() is None:
                    try:
                        p.send_signal(sig)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
                time.sleep(0.05)
        return {name: p.returncode for name, p in self.procs.items()}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _graph_args(p: argparse.ArgumentParser):
    p.add_argument("--cameras", default="realsense", help="comma list of realsense,csi or 'none'")
    p.add_argument("--namespace", default="")
    p.add_argument("--recording", default="", help="RealSense recording (.db3/.bag) instead of a device")
    p.add_argument("--csi-source", default="", help="GStreamer pipeline, /dev/videoN, video file or folder")
    p.add_argument("--style-input", default="", help="existing image topic to stylize when --cameras none")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--style-model", default="")
    p.add_argument("--style-backend", default="onnxruntime")
    p.add_argument("--style-priority", type=int, default=graph.STYLE_PRIORITY)
    p.add_argument("--detection-backend", default=graph.DETECTION_BACKEND)
    p.add_argument("--detection-model", default="")
    p.add_argument("--detection-rate", type=float, default=graph.DETECTION_RATE,
                   help="detection rate_limit in Hz (0 = every frame it can take)")
    p.add_argument("--no-detection", action="store_true")
    p.add_argument("--controller-mode", default="manual")
    p.add_argument("--target-fps", type=float, default=24.0)


def specs_from_args(a: argparse.Namespace) -> list[graph.NodeSpec]:
    """Returns the graph for parsed runner arguments."""
    cams = tuple(c for c in a.cameras.split(",") if c and c != "none")
    return graph.edge_graph(cams, namespace=a.namespace, recording=a.recording, csi_source=a.csi_source,
                            camera_fps=a.fps, style_model=a.style_model, style_backend=a.style_backend,
                            style_priority=a.style_priority, detection=not a.no_detection,
                            detection_backend=a.detection_backend, detection_model=a.detection_model,
                            detection_rate=a.detection_rate, controller_mode=a.controller_mode,
                            target_fps=a.target_fps, style_input=a.style_input)
