"""Starts the edge graph of graph.py as one process per node, as launch/edge.launch.py does on a ROS 2
machine: the command line and parameters file of each node, and the runner's graph arguments (every
argument of the launch file has a --flag twin). GraphProcesses is the one class that starts and stops node
processes (the runner, demo, soak, benchmarks and tests), through launcher/supervise.py."""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from muon_ad_ros import graph
from muon_ad_ros.launcher import names, supervise
from muon_ad_ros.nodes import gate


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


class DuplicateNodes(supervise.Refused):
    """Nodes with the graph's names already run: a second graph beside them would share their names."""

    def __init__(self, fqns: list[str]):
        super().__init__(f"nodes named {', '.join(fqns)} already run on this ROS graph (ROS_DOMAIN_ID "
                         f"{os.environ.get('ROS_DOMAIN_ID', '0') or '0'}): stop that graph first, or start this "
                         "one with another --namespace")
        self.fqns = fqns


class GraphProcesses:
    """The graph's node processes, started through launcher.supervise (each ends when this process dies).
    start() first checks that no node with the same names runs (names.NameCheck, while the processes import
    their libraries; they join the graph only when it passes); stop() ends them (SIGINT, then SIGTERM, then
    SIGKILL)."""

    stagger = 0.0       # seconds between nodes joining the graph (muon-ad bench startup --stagger compares)

    def __init__(self, specs: list[graph.NodeSpec], log_dir: str | Path | None = None, env: dict | None = None,
                 name_check_s: float = names.WAIT_S):
        self.specs = specs
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="muon_ad_ros_logs_"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = graph.node_env(env)
        self.prefix: list[str] = []     # e.g. setpriv ... to run the nodes without CAP_SYS_NICE
        self.name_check_s = name_check_s    # 0: no check
        self.gates: dict[str, int] = {}     # write ends of the nodes' start gates (nodes/gate.py)
        self.check: names.NameCheck | None = None

    def start(self) -> "GraphProcesses":
        """Starts every node; raises DuplicateNodes (every process ended) when their names are taken."""
        try:
            return self._start()
        except BaseException:       # DuplicateNodes, a stop signal during the check, an error: nothing left
            self.stop()
            raise

    def _start(self) -> "GraphProcesses":
        if self.name_check_s > 0:
            with open(self.log_dir / "name_check.log", "w") as log:
                self.check = names.NameCheck([s.fqn for s in self.specs], self.name_check_s, self.env, log)
            self.check.looking()
        for spec in self.specs:
            pfile = self.log_dir / f"{spec.name}.params.yaml"
            pfile.write_text(params_yaml(spec))
            read_end, self.gates[spec.name] = os.pipe()
            try:
                with open(self.log_dir / f"{spec.name}.log", "w") as log:
                    self.procs[spec.name] = supervise.spawn(
                        self.prefix + node_command(spec, str(pfile)), stdout=log, stderr=subprocess.STDOUT,
                        env={**self.env, gate.START_FD_ENV: str(read_end)}, pass_fds=(read_end,),
                        start_new_session=True)
            finally:
                os.close(read_end)
        found = self.check.result() if self.check else []
        if found is None:
            print(f"muon-ad: the check for running nodes of the same names gave no answer in time "
                  f"({self.log_dir / 'name_check.log'}); starting anyway", file=sys.stderr, flush=True)
        elif found:
            raise DuplicateNodes(found)
        for k, name in enumerate(list(self.gates)):
            if k and self.stagger:
                time.sleep(self.stagger)
            with contextlib.suppress(BrokenPipeError):     # a node that died importing: alive() tells
                os.write(self.gates[name], b"1")
            os.close(self.gates.pop(name))
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

    def stop(self, timeout: float | None = None) -> dict[str, int]:
        """Returns each node's exit code after ending every process (supervise.stop). Nodes not yet let onto
        the graph end by themselves once their start gate closes (those still importing, when they reach it),
        so they get a wait before the first signal."""
        withdrawn = bool(self.gates)
        for name in list(self.gates):
            os.close(self.gates.pop(name))
        supervise.stop(list(self.procs.values()) + ([self.check.proc] if self.check else []), timeout,
                       ((None,) if withdrawn else ()) + supervise.ESCALATION)
        return {name: p.returncode for name, p in self.procs.items()}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def seconds_arg(text: str) -> float:
    """argparse type: a duration in seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more, got {text!r}")
    return value


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
    p.add_argument("--name-check", type=seconds_arg, default=names.WAIT_S, metavar="SECONDS",
                   help="how long to look for running nodes with this graph's names before starting (it refuses "
                        "to start beside them); 0 = no check")


def specs_from_args(a: argparse.Namespace) -> list[graph.NodeSpec]:
    """Returns the graph for parsed runner arguments."""
    cams = tuple(c for c in a.cameras.split(",") if c and c != "none")
    return graph.edge_graph(cams, namespace=a.namespace, recording=a.recording, csi_source=a.csi_source,
                            camera_fps=a.fps, style_model=a.style_model, style_backend=a.style_backend,
                            style_priority=a.style_priority, detection=not a.no_detection,
                            detection_backend=a.detection_backend, detection_model=a.detection_model,
                            detection_rate=a.detection_rate, controller_mode=a.controller_mode,
                            target_fps=a.target_fps, style_input=a.style_input)
