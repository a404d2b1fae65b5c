"""`muon-ad bench graph`: the edge graph measured the way ros2_benchmark measures graphs, plus the
latency percentiles it lacks.

A player process publishes recorded frames at fixed rates into the real graph (style_transfer,
detection, controller as separate processes); a collector process-side node counts what comes out.
--streams 2 adds a second player on a second camera topic, both read by the style node as the launch
sets it up for two cameras.
For each rate: delivered FPS, missed frames, camera-to-output latency p50/p90/p99/max, jitter, CPU
use and peak resident memory per node. Then a bisection for the maximum sustainable rate
(output >= input - 5 Hz and <= 5 % missed). A probe that fails is reported with its reason and the
run goes on. Writes bench_graph.json and bench_graph.md into --out.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from muon_ad_ros import graph
from muon_ad_ros.bench.report import write_report
from muon_ad_ros.launcher import supervise
from muon_ad_ros.launcher.demo import Collector, process_stats
from muon_ad_ros.launcher.processes import GraphProcesses
from muon_ad_ros.measure import machine, paced, percentiles

TOPIC = "/camera/color/image_raw"
TOPIC2 = "/csi/image_raw"          # the second stream with --streams 2 (a CSI camera's topic in the launch)


def load_frames(n: int = 90, width: int = 640, height: int = 480) -> np.ndarray:
    """Returns n rgb8 frames read from the demo recording through pyrealsense2 playback."""
    from muon_ad_ros.camera.realsense import RealSenseSource
    from muon_ad_ros.camera.recording import cached_recording
    src = RealSenseSource(recording=cached_recording(width, height, 30), width=width, height=height, fps=30,
                          realtime=False, loop=True, depth=False)
    frames = []
    try:
        while len(frames) < n:
            f = src.read(timeout=2.0)
            if f is not None:
                frames.append(f.color.copy())
    finally:
        src.close()
    return np.stack(frames)


def play(frames_path: str, rate: float, seconds: float, subscribers: int, topic: str = TOPIC) -> int:
    """Publishes the saved frames at a fixed rate (absolute schedule, no drift); prints how many."""
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from muon_ad_ros.nodes.images import fill_image
    from muon_ad_ros.nodes.qos import image_qos
    frames = np.load(frames_path)
    from muon_ad_ros.nodes.spin import close_ros
    rclpy.init()
    node = rclpy.create_node("bench_player")
    pub = node.create_publisher(Image, topic, image_qos())
    deadline = time.monotonic() + 15.0
    while pub.get_subscription_count() < subscribers and time.monotonic() < deadline:
        time.sleep(0.05)
    # each stream its own camera frame, as two camera drivers would stamp them
    frame_id = "camera_color_optical_frame" if topic == TOPIC else "csi_optical_frame"
    msgs = [fill_image(Image(), f, "rgb8", Header(frame_id=frame_id)) for f in frames]
    t0 = time.monotonic()
    sent = 0
    for n in paced(rate, seconds):
        msg = msgs[n % len(msgs)]
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        sent = n + 1
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - t0}), flush=True)
    close_ros(node)
    return 0


def start_profiles(pids: dict, seconds: float, out_dir: Path, tag: str) -> dict:
    """Starts py-spy (sampling, non-blocking) on every node process; returns {node: (process, output)}."""
    import shutil
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        raise FileNotFoundError("py-spy is not installed (it comes with `make env`, pinned in requirements.txt)")
    procs = {}
    for node, pid in pids.items():
        path = out_dir / f"profile_{node}_{tag}.txt"
        procs[node] = (supervise.spawn([exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                                        "--rate", "100", "--format", "raw", "--nonblocking", "--output", str(path)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), path)
    return procs


def summarize_profile(path: Path, top: int = 6) -> dict:
    """Returns the sample count and the functions with the largest self and inclusive shares of a py-spy
    raw (collapsed-stack) file. Only samples of running threads are recorded (py-spy's default), so the
    shares are of the process's busy time; native code shows as the Python call that entered it."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if frames:
            self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for f in set(frames):
            incl_n[f] = incl_n.get(f, 0) + n

    def ranked(d):
        return [{"function": k, "pct": round(100 * v / total, 1)}
                for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]] if total else []
    return {"samples": total, "self": ranked(self_n), "inclusive": ranked(incl_n)}


def _frame_name(frame: str) -> str:
    """Returns 'function (file.py)' of a py-spy frame 'function (path/file.py:line)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')').rsplit(':', 1)[0]).name})" if where else name


def probe_rate(col: Collector, frames_path: str, rate: float, seconds: float, pids: dict, subscribers: int,
               warmup: float = 2.0, profile_dir: Path | None = None, streams: int = 1) -> dict:
    """Returns the figures of one fixed-rate probe (with py-spy profiles of the window into profile_dir).
    streams=2: a second player publishes the same frames at the same rate on TOPIC2 (read by the style node
    only), and its stylized output is reported as "stream_2"."""
    launched = time.time()
    players = [supervise.spawn([sys.executable, "-m", "muon_ad_ros.bench.graph", "play", frames_path, str(rate),
                                str(warmup + seconds + 5.0), str(subs), topic], stdout=subprocess.PIPE,
                               env=graph.node_env())
               for topic, subs in ((TOPIC, subscribers), (TOPIC2, 1))[:streams]]
    try:
        r, (t0, t1) = _measure(col, players[0], launched, rate, seconds, pids, warmup, profile_dir)
        for player in players[1:]:
            player.communicate(timeout=45)
            if player.returncode:
                raise RuntimeError(f"the second player exited with {player.returncode}")
        if streams == 2:
            with col.lock:
                styl = [(t, lat) for t, lat in col.arrivals["stylized_1"] if t0 <= t < t1]
            r["stream_2"] = stream_figures(styl, rate, t1 - t0)
        return r
    finally:
        for player in players:
            if player.poll() is None:
                player.kill()
                player.wait()


def _measure(col, player, launched, rate, seconds, pids, warmup, profile_dir) -> tuple[dict, tuple[float, float]]:
    """Returns (the probe's figures, its measuring window as wall times)."""
    # The window starts `warmup` seconds after the first frame arrives, not after the player starts.
    deadline = launched + 30.0
    while time.time() < deadline and not any(t >= launched for t, _ in list(col.arrivals["raw"])[-5:]):
        if player.poll() is not None:
            raise RuntimeError(f"the player exited with {player.returncode} before its first frame arrived")
        time.sleep(0.05)
    time.sleep(warmup)
    cpu0 = process_stats(pids)
    t0 = time.time()
    profiles = start_profiles(pids, seconds, profile_dir, f"{rate:g}Hz") if profile_dir else {}
    time.sleep(seconds)
    t1 = time.time()
    cpu1 = process_stats(pids)
    for proc, _ in profiles.values():
        proc.wait(timeout=30)
    # the player ends 5 s after the window, once it has had 15 s to see its subscribers
    out, _ = player.communicate(timeout=45)
    if player.returncode:
        raise RuntimeError(f"the player exited with {player.returncode}")
    sent = json.loads(out.decode().strip().splitlines()[-1])
    with col.lock:
        styl = [(t, lat) for t, lat in col.arrivals["stylized"] if t0 <= t < t1]
        raw = [(t, lat) for t, lat in col.arrivals["raw"] if t0 <= t < t1]
        det = [(t, lat) for t, lat in col.arrivals["detections"] if t0 <= t < t1]
        levels = [st["level"] for st in col.states if t0 <= st["t"] < t1]
        style_diag = col.diagnostics.get("style_transfer: style", {}).get("values", {})
    expected = rate * (t1 - t0)
    times = np.array([t for t, _ in styl])
    gaps = np.diff(times) * 1e3 if times.size > 2 else np.array([])
    return ({
        "input_hz": rate, "window_s": round(t1 - t0, 2), "sent_total": sent["sent"],
        **stream_figures(styl, rate, t1 - t0),
        "missed_frames": max(0, int(round(expected - len(styl)))),
        "jitter_ms": round(float(np.std(gaps)), 2) if gaps.size else float("nan"),
        # the share of stylized frames that ran each exported level (the controller's choice in its closed-loop modes)
        "levels_pct": {f"{lv:g}": round(100 * levels.count(lv) / len(levels), 1) for lv in sorted(set(levels), reverse=True)},
        # where the style node's frames spent their time (its own timers, p50 ms over its last 300 frames)
        "style_stages_ms": {k[len("stage_"):-len("_p50_ms")]: float(v) for k, v in style_diag.items()
                            if k.startswith("stage_") and k.endswith("_p50_ms")},
        "style_frames_batched": int(style_diag.get("frames_batched", 0)),
        "detection_fps": round(len(det) / (t1 - t0), 2),
        "detection_latency_ms": percentiles([lat for _, lat in det], (50, 99)),
        "transport": {"received_pct": round(100 * len(raw) / expected, 1),
                      "latency_ms": percentiles([lat for _, lat in raw], (50, 99))},
        "cpu_pct": {k: round(100 * (cpu1[k]["cpu_s"] - cpu0[k]["cpu_s"]) / (t1 - t0), 1) for k in pids},
        "rss_mb": {k: v["rss_mb"] for k, v in cpu1.items()},
        **({"profile": {k: {"file": path.name, **summarize_profile(path)} for k, (_, path) in profiles.items()
                        if path.is_file()}} if profiles else {}),
    }, (t0, t1))


def stream_figures(styl: list, rate: float, window: float) -> dict:
    """Returns stylized FPS, missed % and latency percentiles of one stream's (receipt time, latency ms)
    arrivals in a window of ``window`` seconds at input ``rate``."""
    return {"stylized_fps": round(len(styl) / window, 2),
            "missed_pct": round(100 * max(0.0, 1 - len(styl) / (rate * window)), 1),
            "latency_ms": percentiles([lat for _, lat in styl], (50, 90, 99))}


def safe_probe(rate: float, *args, **kwargs) -> dict:
    """Returns probe_rate's figures, or {'input_hz', 'error'} when the probe failed."""
    try:
        return probe_rate(args[0], args[1], rate, *args[2:], **kwargs)
    except Exception as exc:     # one failed probe must not lose the others' results
        return {"input_hz": rate, "error": f"{type(exc).__name__}: {exc}"}


def sustainable(r: dict) -> bool:
    """ros2_benchmark's criterion: output >= input - 5 Hz and <= 5 % missed."""
    return "error" not in r and all(s["stylized_fps"] >= r["input_hz"] - 5 and s["missed_pct"] <= 5.0
                                    for s in (r, r.get("stream_2", r)))


def to_markdown(report: dict) -> str:
    """Returns the report as Markdown tables."""
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; command: `{report['command']}`", "",
             "| input Hz | stylized FPS | missed | latency p50 / p90 / p99 / max ms | jitter ms | levels ran | "
             "detection FPS | transport received, p50 / p99 ms | CPU % per node | RSS MB per node |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["fixed_rates"] + report["search"]:
        if "error" in r:
            lines.append(f"| {r['input_hz']:g} | probe failed: {r['error']} | | | | | | | | |")
            continue
        lat, tr = r["latency_ms"], r["transport"]
        s2 = r.get("stream_2")
        two = (lambda a, b: f"{a} / {b}") if s2 else (lambda a, b: f"{a}")
        lines.append(f"| {r['input_hz']:g} | {two(r['stylized_fps'], (s2 or {}).get('stylized_fps'))} | "
                     f"{r['missed_frames']} ({two(r['missed_pct'], (s2 or {}).get('missed_pct'))} %) | "
                     f"{lat['p50']} / {lat['p90']} / {two(lat['p99'], (s2 or {}).get('latency_ms', {}).get('p99'))} / "
                     f"{lat['max']} | {r['jitter_ms']} | "
                     f"{', '.join(f'{k}: {v} %' for k, v in r.get('levels_pct', {}).items()) or 'n/a'} | "
                     f"{r['detection_fps']} | {tr['received_pct']} %, {tr['latency_ms']['p50']} / "
                     f"{tr['latency_ms']['p99']} | {r['cpu_pct']} | {r['rss_mb']} |")
    lines += ["", f"Maximum sustainable input rate: **{report['max_sustainable_hz']} Hz** "
                  f"(output >= input - 5 Hz, <= 5 % missed; probes of {report['probe_seconds']} s)",
              f"Peak resident memory, whole graph: {report['peak_graph_rss_mb']} MB"]
    staged = [r for r in report["fixed_rates"] + report["search"] if r.get("style_stages_ms")]
    if staged:
        stages = list(staged[0]["style_stages_ms"])
        lines += ["", "Where the style node's frames spend their time (its own timers, p50 ms): wait = in the "
                      "latest-frame slot, convert = message view and colour conversion, pre / run / post = the "
                      "backend's input preparation, network and output conversion, publish = the messages out.", "",
                  "| input Hz | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
        for r in staged:
            lines.append(f"| {r['input_hz']:g} | " + " | ".join(f"{r['style_stages_ms'].get(k, float('nan')):.2f}"
                                                               for k in stages) + " |")
    for r in report["fixed_rates"]:
        for node, prof in r.get("profile", {}).items():
            lines += ["", f"Profile of {node} at {r['input_hz']:g} Hz (py-spy, {prof['samples']} samples of busy "
                          f"time, {prof['file']}):", "", "| self % | function | inclusive % | function |",
                      "|---|---|---|---|"]
            for a, b in zip(prof["self"], prof["inclusive"]):
                lines.append(f"| {a['pct']} | `{a['function']}` | {b['pct']} | `{b['function']}` |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="muon-ad bench graph", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/bench")
    ap.add_argument("--rates", default="10,30,60")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per probe")
    ap.add_argument("--search-steps", type=int, default=4)
    ap.add_argument("--no-detection", action="store_true")
    ap.add_argument("--controller-mode", default="manual")
    ap.add_argument("--target-fps", type=float,
                    help="the controller's frame-rate target in target_fps mode, per camera stream "
                         "(default: the launch file's)")
    ap.add_argument("--detection-rate", type=float, default=graph.DETECTION_RATE,
                    help="detection rate_limit in Hz (0 = every frame it can take)")
    ap.add_argument("--streams", type=int, choices=(1, 2), default=1,
                    help="2: a second camera stream at the same rate into the style node (cameras:=realsense,csi); "
                         "FPS, missed and p99 are then given as stream 1 / stream 2")
    ap.add_argument("--batch", action="store_true",
                    help="with --streams 2: frames of both streams that wait together in one network call (the style "
                         "node's batch_streams)")
    ap.add_argument("--profile", action="store_true",
                    help="sample every node with py-spy during the fixed-rate probes (adds ~1-3 %% CPU)")
    a = ap.parse_args(argv)
    return supervise.run_supervised(lambda: bench(a, argv), "muon-ad bench graph")


def bench(a, argv) -> int:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    frames_path = out / "bench_frames.npy"
    np.save(frames_path, load_frames())
    specs = graph.edge_graph((), style_input=TOPIC, style_input_2=TOPIC2 if a.streams == 2 else "",
                             detection=not a.no_detection, controller_mode=a.controller_mode,
                             detection_rate=a.detection_rate,
                             **({"target_fps": a.target_fps} if a.target_fps else {}))
    if a.batch:
        specs = [replace(s, parameters={**s.parameters, "batch_streams": True}) if s.kind == "style_transfer" else s
                 for s in specs]
    g = GraphProcesses(specs, out / "logs").start()
    col = Collector("", raw_topic=TOPIC, second_stream=a.streams == 2)
    report = {"machine": machine(), "command": "muon-ad bench graph " + " ".join(argv or sys.argv[1:]),
              "probe_seconds": a.seconds, "graph": [s.name for s in specs], "fixed_rates": [], "search": []}
    try:
        time.sleep(6.0)                 # model loading and discovery
        pids = g.pids()
        # the collector, plus every node that reads the camera topic
        subscribers = 1 + sum(1 for s in specs if any(dst == TOPIC for _, dst in s.remaps))
        for rate in [float(r) for r in a.rates.split(",")]:
            r = safe_probe(rate, col, str(frames_path), a.seconds, pids, subscribers,
                           profile_dir=out / "logs" if a.profile else None, streams=a.streams)
            report["fixed_rates"].append(r)
            print(json.dumps({k: r[k] for k in ("input_hz", "stylized_fps", "missed_pct", "latency_ms", "error")
                              if k in r}), flush=True)
        ok = [r["input_hz"] for r in report["fixed_rates"] if sustainable(r)]
        bad = [r["input_hz"] for r in report["fixed_rates"] if "error" not in r and not sustainable(r)]
        lo, hi = (max(ok) if ok else 1.0), (min(x for x in bad if x > max(ok, default=0)) if bad else 120.0)
        for _ in range(a.search_steps):
            mid = round((lo + hi) / 2, 1)
            r = safe_probe(mid, col, str(frames_path), a.seconds, pids, subscribers, streams=a.streams)
            report["search"].append(r)
            lo, hi = (mid, hi) if sustainable(r) else (lo, mid)
        report["max_sustainable_hz"] = max((r["input_hz"] for r in report["fixed_rates"] + report["search"]
                                            if sustainable(r)), default=0.0)
        report["alive"] = g.alive()
    finally:
        g.stop()
        col.close()
    ran = [r for r in report["fixed_rates"] + report["search"] if "error" not in r]
    report["peak_graph_rss_mb"] = round(max(sum(r["rss_mb"].values()) for r in ran), 1) if ran else float("nan")
    md = to_markdown(report)
    write_report(out, "bench_graph", report, md + "\n")
    print(md)
    return 0 if ran else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "play":
        raise SystemExit(play(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]),
                              *sys.argv[6:7]))
    raise SystemExit(main())
