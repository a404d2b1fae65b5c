"""`make demo`: the whole edge graph on a RealSense recording made from bundled photographs, for a
bounded time; writes the stylized video, snapshots, detections, diagnostics and measured FPS/latency
into one folder. Also the long soak run (`make soak`). The Collector is shared with the benchmarks."""
from __future__ import annotations

import collections
import copy
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from muon_ad_ros.launcher import supervise
from muon_ad_ros.measure import machine, percentiles



class Collector:
    """An in-process node that records what the graph publishes: stylized/annotated frames,
    detections, pruning states and diagnostics, with receipt times for rates and latencies."""

    def __init__(self, namespace: str = "", video_path: Path | None = None, snapshot_dir: Path | None = None,
                 raw_topic: str = "/camera/color/image_raw", second_stream: bool = False):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        from muon_ad_ros.msg import DetectionArray, PruningState
        from muon_ad_ros.nodes import images, qos

        self.images = images
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        if not rclpy.ok():
            supervise.init_ros()
        self.node = rclpy.create_node("demo_collector")
        self.lock = threading.Lock()
        self.arrivals = collections.defaultdict(list)     # topic -> [(receipt wall time, latency ms)]
        self.detections: list[dict] = []
        self.states: list[dict] = []
        self.diagnostics: dict[str, dict] = {}
        self.video_path, self.snapshot_dir = video_path, snapshot_dir
        self.writer = None
        # kind -> {stamp: frame} of the latest frames (views of their messages' buffers: no copy), so
        # a snapshot puts together the camera frame and the outputs made from it.
        self.recent: dict[str, collections.OrderedDict] = collections.defaultdict(collections.OrderedDict)
        self.start_wall = time.time()
        sensor = qos.image_qos()
        self.node.create_subscription(Image, f"{ns}/stylized/image_raw", lambda m: self._on_image("stylized", m), sensor)
        if second_stream:   # the style node's output of a second camera (graph.edge_graph's style_input_2)
            self.node.create_subscription(Image, f"{ns}/stylized/image_raw_1",
                                          lambda m: self._on_image("stylized_1", m), sensor)
        self.node.create_subscription(Image, f"{ns}/detections/image_annotated",
                                      lambda m: self._on_image("annotated", m), sensor)
        self.node.create_subscription(Image, f"{ns}{raw_topic}", lambda m: self._on_image("raw", m), sensor)
        self.node.create_subscription(DetectionArray, f"{ns}/detections", self._on_detections, qos.reliable_qos())
        self.node.create_subscription(PruningState, f"{ns}/stylized/pruning_state", self._on_state,
                                      qos.reliable_qos())
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._running = True
        self._spin.start()

    def _spin_loop(self):
        while self._running:
            self.executor.spin_once(timeout_sec=0.1)

    def _latency(self, header) -> tuple[float, float]:
        now = time.time()
        return now, (now - self.images.stamp_seconds(header.stamp)) * 1e3

    def _on_image(self, kind: str, msg):
        now, lat = self._latency(msg.header)
        with self.lock:
            self.arrivals[kind].append((now, lat))
        if self.snapshot_dir is None and not (kind == "stylized" and self.video_path is not None):
            return      # counted only (the benchmarks): no frame is kept or written
        try:
            frame = self.images.image_view(msg, ("rgb8",), 8192)
        except self.images.ImageError:
            return
        if self.snapshot_dir is not None:
            recent = self.recent[kind]
            with self.lock:
                recent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = frame
                while len(recent) > self.KEEP:
                    recent.popitem(last=False)
        if kind == "stylized" and self.video_path is not None:
            if self.writer is None:
                self.writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0,
                                              (msg.width, msg.height))
            self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def _on_detections(self, msg):
        now, lat = self._latency(msg.header)
        with self.lock:
            self.arrivals["detections"].append((now, lat))
            self.detections.append({"stamp": self.images.stamp_seconds(msg.header.stamp), "frame_id": msg.header.frame_id,
                                    "backend": msg.backend, "latency_ms": round(lat, 2),
                                    "boxes": [{"box": [round(d.x_min, 1), round(d.y_min, 1), round(d.x_max, 1),
                                                       round(d.y_max, 1)], "class_id": d.class_id,
                                               "class_name": d.class_name, "score": round(d.score, 3)}
                                              for d in msg.detections]})

    def _on_state(self, msg):
        with self.lock:
            self.states.append({"t": time.time(), "retention": round(msg.retention_requested, 3),
                                "level": round(msg.retention_level, 3),
                                "flops_fraction": round(msg.flops_fraction, 3), "inference_ms": round(msg.inference_ms, 2),
                                "context_groups": list(msg.context_groups)})

    def _on_diag(self, msg):
        with self.lock:
            for st in msg.status:
                self.diagnostics[st.name] = {"level": int.from_bytes(st.level, "little") if isinstance(st.level, bytes)
                                             else int(st.level), "message": st.message,
                                             "values": {v.key: v.value for v in st.values}, "t": time.time()}

    KEEP = 45        # frames kept per kind (1.5 s at 30 Hz): detection's rate limit leaves gaps

    def matched(self) -> tuple[tuple[int, int], list[np.ndarray]] | None:
        """Returns (stamp, [raw, stylized, annotated]) of the newest camera stamp all three were
        received with, or None."""
        kinds = ("raw", "stylized", "annotated")
        with self.lock:
            common = set(self.recent["raw"]).intersection(*(self.recent[k] for k in kinds[1:]))
            if not common:
                return None
            stamp = max(common)
            return stamp, [self.recent[k][stamp] for k in kinds]

    def snapshot(self, path: Path) -> tuple[int, int] | None:
        """Writes raw | stylized | annotated of one camera frame side by side; returns its stamp, or None
        while no stamp has all three."""
        found = self.matched()
        if found is None:
            return None
        stamp, parts = found
        h = min(p.shape[0] for p in parts)
        row = np.concatenate([cv2.resize(p, (int(p.shape[1] * h / p.shape[0]), h)) for p in parts], axis=1)
        return stamp if cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR)) else None

    def rate(self, kind: str, since: float) -> float:
        """Returns messages per second of `kind` received after wall time `since`."""
        with self.lock:
            times = [t for t, _ in self.arrivals[kind] if t >= since]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def latencies(self, kind: str, since: float) -> list[float]:
        with self.lock:
            return [lat for t, lat in self.arrivals[kind] if t >= since]

    def close(self):
        self._running = False
        self._spin.join(timeout=2.0)
        if self.writer is not None:
            self.writer.release()
        from muon_ad_ros.nodes.spin import close_ros
        close_ros(self.node, shutdown=False)   # the process may go on with ROS (bench graph's next probe)


def ensure_recording() -> Path:
    """Returns the demo recording (made once from bundled photographs through pyrealsense2's
    software device, then reused while its inputs are unchanged)."""
    from muon_ad_ros.camera.recording import cached_recording
    print("demo: preparing the RealSense recording of the bundled photographs (made once)", flush=True)
    return cached_recording(640, 480, 30)


def process_stats(pids: dict[str, int]) -> dict[str, dict]:
    """Returns CPU seconds and resident memory of each node process."""
    import psutil
    out = {}
    for name, pid in pids.items():
        try:
            p = psutil.Process(pid)
            t = p.cpu_times()
            out[name] = {"rss_mb": round(p.memory_info().rss / 2**20, 1), "cpu_s": round(t.user + t.system, 2)}
        except psutil.Error:
            out[name] = {"rss_mb": float("nan"), "cpu_s": float("nan")}
    return out


def node_fps(start: dict[str, dict], end: dict[str, dict]) -> dict[str, float]:
    """Returns {status name: frames per second} from two of the Collector's /diagnostics snapshots: what each
    node says it processed (the camera: published) between them. The collector's own counts can be lower:
    it is one more subscriber, and drops frames when the CPU is short."""
    rates = {}
    for name, e in end.items():
        s = start.get(name)
        try:
            frames = int(e["values"]["frames_processed"]) - int(s["values"]["frames_processed"])
        except (TypeError, KeyError, ValueError):
            continue
        if e["t"] > s["t"]:
            rates[name] = round(frames / (e["t"] - s["t"]), 2)
    return rates


def run_graph_and_collect(a, out: Path, seconds: float, warmup: float = 8.0, sample_every: float = 5.0,
                          mcap: bool = False):
    """Runs the graph of runner arguments `a` for warmup + seconds; returns (collector, graph, summary)."""
    from muon_ad_ros.launcher.processes import GraphProcesses, specs_from_args
    from muon_ad_ros.launcher.record import Recorder, graph_topics
    specs = specs_from_args(a)
    g = GraphProcesses(specs, out / "logs", name_check_s=a.name_check).start()
    col = Collector(a.namespace, video_path=out / "stylized.mp4", snapshot_dir=out)
    recorder = None
    peak: dict[str, float] = collections.defaultdict(float)
    rss_series: dict[str, list] = collections.defaultdict(list)
    t_start = time.time()
    t_measure = t_start + warmup
    next_sample, snaps = t_start, 0
    diag_start = None
    finished = False
    try:
        # graph.mcap: the compressed stylized/annotated images, detections, markers, pruning state,
        # diagnostics and TF, for ros2 bag and Foxglove (the /compressed twins cost ~1 ms per frame each).
        if mcap:
            recorder = Recorder(out / "graph.mcap", graph_topics(a.namespace, camera_topic=""))
        while time.time() < t_measure + seconds:
            time.sleep(0.25)
            if diag_start is None and time.time() >= t_measure:
                with col.lock:
                    diag_start = copy.deepcopy(col.diagnostics)
            if time.time() >= next_sample:
                next_sample += sample_every
                for name, st in process_stats(g.pids()).items():
                    peak[name] = max(peak[name], st["rss_mb"]) if st["rss_mb"] == st["rss_mb"] else peak[name]
                    rss_series[name].append((round(time.time() - t_start, 1), st["rss_mb"]))
                if time.time() > t_measure and snaps < 4 and col.snapshot(out / f"snapshot_{snaps}.png"):
                    snaps += 1
            if not all(g.alive().values()):
                break
        cpu = process_stats(g.pids())
        finished = True
    finally:
        alive = g.alive()
        codes = g.stop()
        recorded = recorder.close() if recorder is not None else {}
        if not finished:    # a stop signal (supervise.Interrupted) or an error: no report, the collector closes here
            col.close()
    span = max(1e-6, time.time() - t_measure)
    summary = {
        "machine": machine(), "measured_seconds": round(span, 1), "warmup_seconds": warmup,
        "graph": [{"name": s.name, "kind": s.kind, "parameters": s.parameters, "remaps": list(s.remaps)} for s in specs],
        "alive_at_end": alive, "exit_codes": codes,
        "stylized_fps": round(col.rate("stylized", t_measure), 2),
        "camera_fps": round(col.rate("raw", t_measure), 2),
        "detection_fps": round(col.rate("detections", t_measure), 2),
        "node_fps": node_fps(diag_start or {}, col.diagnostics),
        "stylized_latency_ms": percentiles(col.latencies("stylized", t_measure)),
        "detection_latency_ms": percentiles(col.latencies("detections", t_measure)),
        # From the camera stamp to the collector receiving the raw frame: the camera's own share
        # (a recording read slower than it was made re-anchors its stamps at two frame periods behind arrival).
        "camera_latency_ms": percentiles(col.latencies("raw", t_measure)),
        "frames": {k: len(v) for k, v in col.arrivals.items()},
        "detections_with_boxes": sum(1 for d in col.detections if d["boxes"]),
        "peak_rss_mb": dict(peak), "rss_series_mb": dict(rss_series), "cpu": cpu,
        "pruning": col.states[-1] if col.states else None,
        "diagnostics": col.diagnostics,
        "snapshots": snaps,
        "recorded_messages": recorded,
    }
    return col, g, summary


def run_demo(a) -> int:
    """Runs the demo and returns 0 when stylized frames came out."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not a.recording and "realsense" in a.cameras:
        a.recording = str(ensure_recording())
    if a.controller_mode == "manual":
        a.controller_mode = "target_fps"
    col, g, summary = run_graph_and_collect(a, out, a.seconds, mcap=True)
    col.close()
    with open(out / "detections.jsonl", "w") as f:
        for d in col.detections:
            f.write(json.dumps(d) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "diagnostics.json").write_text(json.dumps(summary["diagnostics"], indent=2))
    lat = summary["stylized_latency_ms"]
    nodes = ", ".join(f"{name.split(': ')[0]} {fps} FPS" for name, fps in summary["node_fps"].items())
    lines = [f"demo output: {out.resolve()}",
             f"  stylized video   {out / 'stylized.mp4'} ({summary['frames'].get('stylized', 0)} frames)",
             f"  snapshots        {out}/snapshot_*.png (raw | stylized | annotated)",
             f"  detections       {out / 'detections.jsonl'} ({len(col.detections)} messages, "
             f"{summary['detections_with_boxes']} with boxes)",
             f"  summary          {out / 'summary.json'}",
             f"  recording        {out / 'graph.mcap'} (ros2 bag play / Foxglove; "
             f"{sum(summary['recorded_messages'].values())} messages)",
             f"  the nodes' own counts (/diagnostics): {nodes or 'none arrived'}",
             f"  received here: camera {summary['camera_fps']} FPS, stylized {summary['stylized_fps']} FPS, "
             f"detection {summary['detection_fps']} FPS; stylized latency p50 {lat['p50']} / p99 {lat['p99']} ms "
             f"from the camera stamp (raw frames arrive p50 {summary['camera_latency_ms']['p50']} ms after it)",
             f"  peak RSS per node (MB): {summary['peak_rss_mb']}"]
    print("\n".join(lines))
    if not summary["frames"].get("stylized"):
        print("demo FAILED: no stylized frames arrived; node logs are in", out / "logs")
        return 1
    return 0


def run_soak(a) -> int:
    """Runs the demo graph for a.seconds and reports crashes, memory growth and rate stability."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not a.recording and "realsense" in a.cameras:
        a.recording = str(ensure_recording())
    col, g, summary = run_graph_and_collect(a, out, a.seconds, warmup=20.0, sample_every=10.0)
    with col.lock:
        times = [t for t, _ in col.arrivals["stylized"]]
    col.close()
    per_minute = np.histogram(times, bins=max(1, int((times[-1] - times[0]) // 60)))[0].tolist() if len(times) > 1 else []
    growth = {}
    for name, series in summary["rss_series_mb"].items():
        after = [mb for t, mb in series if t >= 20.0 + 60.0]    # from one minute after warm-up
        growth[name] = round(after[-1] - after[0], 1) if len(after) > 1 else float("nan")
    report = {"crashed": [n for n, ok in summary["alive_at_end"].items() if not ok],
              "rss_growth_mb": growth, "stylized_frames_per_minute": per_minute, **summary}
    (out / "soak.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: report[k] for k in ("crashed", "rss_growth_mb", "stylized_fps", "detection_fps",
                                              "stylized_latency_ms", "stylized_frames_per_minute")}, indent=2))
    return 1 if report["crashed"] or any(v > 20 for v in growth.values() if v == v) else 0
