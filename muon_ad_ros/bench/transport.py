"""`muon-ad bench transport`: which Fast DDS transport setting lets the graph's images reach every
other ROS 2 process on the robot, measured side by side.

For each candidate setting and each direction (graph -> default process, default process -> graph,
graph -> graph, and default -> default as the baseline) a publisher process sends rgb8 frames with
sensor-data QoS at a fixed rate and a subscriber process counts them. A "default" process has no
FASTDDS_*/FASTRTPS_* variable at all, as RViz, realsense2_camera or Nav2 start. Reported per trial:
time from both processes' start to the first frame, loss after the first frame, and publish-to-receive
latency p50/p99. Writes bench_transport.json and bench_transport.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from muon_ad_ros import distro, graph
from muon_ad_ros.bench.report import write_report
from muon_ad_ros.launcher import supervise
from muon_ad_ros.measure import machine, paced, percentiles

TOPIC = "/bench_transport/image"
# The variables Fast DDS reads to choose transports; a default process has none of them.
FASTDDS_VARS = (*distro.PROFILE_VARS, distro.BUILTIN_TRANSPORTS_VAR, "RMW_FASTRTPS_USE_QOS_FROM_XML",
                "SKIP_DEFAULT_XML_FILE")


def candidates() -> dict[str, dict]:
    """Returns {name: environment variables} of each transport setting compared, under the variable names the
    installed Fast DDS reads (the profile: FASTRTPS_DEFAULT_PROFILES_FILE on 2.x, FASTDDS_ on 3.x)."""
    return {"default": {},
            "large_data": {distro.BUILTIN_TRANSPORTS_VAR: "LARGE_DATA"},
            "profile": {var: str(graph.transport_profile()) for var in distro.profile_vars()}}


def unmeasurable(setting: str) -> str:
    """Returns why this Fast DDS cannot take a setting (its row would measure the defaults), or ''."""
    if setting == "large_data" and distro.knows_builtin_transports() is False:
        return f"this Fast DDS does not read {distro.BUILTIN_TRANSPORTS_VAR} (Fast DDS 2.6.7 and later do)"
    return ""


def trials(names=("large_data", "profile")) -> list[dict]:
    """Returns the trials: each candidate to itself, to and from a default process, default to default;
    a default publisher with reliable QoS (a camera driver's default) into the profile; and the profile
    between two hosts (two network namespaces joined by a veth pair) when this process may make them."""
    rows = [{"publisher": "default", "subscriber": "default"}]
    for c in names:
        rows += [{"publisher": c, "subscriber": c}, {"publisher": c, "subscriber": "default"},
                 {"publisher": "default", "subscriber": c}]
    if "profile" in names:
        rows.append({"publisher": "default", "subscriber": "profile", "qos": "reliable"})
        rows.append({"publisher": "profile", "subscriber": "profile", "hosts": 2})
        rows.append({"publisher": "profile", "subscriber": "profile", "hosts": 2, "qos": "reliable"})
    return rows


class TwoHosts:
    """Two network namespaces joined by a veth pair (10.213.7.1 and .2, multicast routed): DDS sees two
    hosts, so frames travel over UDPv4 as they would to RViz on a laptop. Needs root (CAP_NET_ADMIN)."""

    NAMES = ("muon_ad_bench_a", "muon_ad_bench_b")

    def __enter__(self):
        a, b = self.NAMES
        self.__exit__()
        cmds = [["ip", "netns", "add", a], ["ip", "netns", "add", b],
                ["ip", "link", "add", "mab_a", "netns", a, "type", "veth", "peer", "name", "mab_b", "netns", b]]
        for ns, dev, addr in ((a, "mab_a", "10.213.7.1/24"), (b, "mab_b", "10.213.7.2/24")):
            cmds += [["ip", "-n", ns, "link", "set", "lo", "up"], ["ip", "-n", ns, "addr", "add", addr, "dev", dev],
                     ["ip", "-n", ns, "link", "set", dev, "up", "multicast", "on"],
                     ["ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", dev]]
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True, timeout=10)
        return self

    def prefix(self, k: int) -> list[str]:
        return ["ip", "netns", "exec", self.NAMES[k]]

    def __exit__(self, *exc):
        for ns in self.NAMES:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def clean_env(extra: dict, domain: int) -> dict:
    """Returns this process's environment without any Fast DDS transport variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in FASTDDS_VARS}
    env.update(extra)
    env["ROS_DOMAIN_ID"] = str(domain)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    return env


def _qos(name: str, depth: int):
    from rclpy.qos import ReliabilityPolicy

    from muon_ad_ros.nodes.qos import image_qos
    qos = image_qos(depth)
    if name == "reliable":
        qos.reliability = ReliabilityPolicy.RELIABLE
    return qos


def publish(width: int, height: int, rate: float, seconds: float, out: str, qos: str = "sensor") -> int:
    """Publishes numbered frames (sequence number in frame_id) from start for `seconds`; writes the count."""
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from muon_ad_ros.nodes.images import fill_image
    from muon_ad_ros.nodes.spin import close_ros
    rclpy.init()
    node = rclpy.create_node("bench_transport_pub")
    pub = node.create_publisher(Image, TOPIC, _qos(qos, 1))
    frame = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    msg = fill_image(Image(), frame, "rgb8", Header())
    sent = 0
    for n in paced(rate, seconds):
        msg.header.frame_id = str(n)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        sent = n + 1
    Path(out).write_text(json.dumps({"sent": sent}))
    close_ros(node)
    return 0


def subscribe(seconds: float, t_start: float, out: str, qos: str = "sensor") -> int:
    """Receives frames for `seconds`; writes sequence numbers, latencies and the first-frame time."""
    import rclpy
    from sensor_msgs.msg import Image

    from muon_ad_ros.nodes.images import stamp_seconds
    from muon_ad_ros.nodes.spin import close_ros
    rclpy.init()
    node = rclpy.create_node("bench_transport_sub")
    seqs: list[int] = []
    lat: list[float] = []
    first: list[float] = []

    def on_image(msg):
        now = time.time()
        if not first:
            first.append(now - t_start)
        seqs.append(int(msg.header.frame_id))
        lat.append((now - stamp_seconds(msg.header.stamp)) * 1e3)

    node.create_subscription(Image, TOPIC, on_image, _qos(qos, 5))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    Path(out).write_text(json.dumps({"seqs": seqs, "latency_ms": lat, "first_s": first[0] if first else None}))
    close_ros(node)
    return 0


def run_trial(trial: dict, width: int, height: int, rate: float, seconds: float, domain: int, tmp: Path,
              hosts: TwoHosts | None = None) -> dict:
    """Returns the figures of one publisher/subscriber pair, each in its own process and environment."""
    cands = candidates()
    pub_set, sub_set, qos = trial["publisher"], trial["subscriber"], trial.get("qos", "sensor")
    row = {"publisher": pub_set, "subscriber": sub_set, "qos": qos, "hosts": trial.get("hosts", 1),
           "resolution": f"{width}x{height}", "rate_hz": rate}
    if row["hosts"] == 2 and hosts is None:
        return row | {"error": "two network namespaces could not be made (needs root)"}
    why = unmeasurable(pub_set) or unmeasurable(sub_set)
    if why:
        return row | {"error": why}
    tag = "-".join(str(v) for v in row.values())
    pub_out, sub_out = tmp / f"{tag}.pub.json", tmp / f"{tag}.sub.json"
    me = [sys.executable, "-m", "muon_ad_ros.bench.transport"]
    pre = (hosts.prefix(0), hosts.prefix(1)) if row["hosts"] == 2 else ([], [])
    t_start = time.time()
    sub = supervise.spawn(pre[1] + me + ["_sub", "--seconds", str(seconds + 4.0), "--t-start", repr(t_start),
                                         "--qos", qos, "--out", str(sub_out)], env=clean_env(cands[sub_set], domain))
    pub = supervise.spawn(pre[0] + me + ["_pub", "--width", str(width), "--height", str(height), "--rate", str(rate),
                                         "--seconds", str(seconds), "--qos", qos, "--out", str(pub_out)],
                          env=clean_env(cands[pub_set], domain))
    try:
        pub.wait(timeout=seconds + 30)
        sub.wait(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        pub.kill()
        sub.kill()
        return row | {"error": "a process did not finish in time"}
    if pub.returncode or sub.returncode:
        return row | {"error": f"exit codes publisher {pub.returncode}, subscriber {sub.returncode}"}
    sent = json.loads(pub_out.read_text())["sent"]
    got = json.loads(sub_out.read_text())
    seqs = sorted(set(got["seqs"]))
    if not seqs:
        return row | {"sent": sent, "received": 0, "loss_pct": 100.0, "first_frame_s": None,
                      "latency_ms": percentiles([])}
    expected = sent - seqs[0]          # frames published from the first one that arrived
    return row | {"sent": sent, "received": len(seqs), "loss_pct": round(100.0 * (1 - len(seqs) / expected), 2),
                  "first_frame_s": round(got["first_s"], 2), "latency_ms": percentiles(got["latency_ms"])}


def markdown(result: dict) -> str:
    lines = [f"# Transport: {result['rate_hz']:g} Hz rgb8, sensor-data QoS, {result['seconds']:g} s per trial",
             "", f"Machine: {result['machine']['cpu']} ({result['machine']['cores']} cores)", "",
             "Fast DDS: " + "; ".join(result.get("fastdds", [])), "",
             "| publisher | subscriber | QoS | hosts | resolution | loss % | first frame s | p50 ms | p99 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["trials"]:
        head = f"| {r['publisher']} | {r['subscriber']} | {r['qos']} | {r['hosts']} | {r['resolution']} |"
        if "error" in r:
            lines.append(f"{head} failed: {r['error']} | | | |")
            continue
        first = "never" if r["first_frame_s"] is None else f"{r['first_frame_s']:.2f}"
        lat = r["latency_ms"]
        lines.append(f"{head} {r['loss_pct']:.1f} | {first} | {lat['p50']:.1f} | {lat['p99']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="muon-ad bench transport", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    p = sub.add_parser("_pub")
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--rate", type=float)
    p.add_argument("--seconds", type=float)
    p.add_argument("--out")
    p.add_argument("--qos", default="sensor")
    s = sub.add_parser("_sub")
    s.add_argument("--qos", default="sensor")
    s.add_argument("--seconds", type=float)
    s.add_argument("--t-start", type=float)
    s.add_argument("--out")
    ap.add_argument("--out", default="out/bench")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--resolutions", default="640x480,1280x720")
    ap.add_argument("--candidates", default="large_data,profile")
    ap.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "0") or 0) + 1)
    a = ap.parse_args(argv)
    if a.cmd == "_pub":
        return publish(a.width, a.height, a.rate, a.seconds, a.out, a.qos)
    if a.cmd == "_sub":
        return subscribe(a.seconds, a.t_start, a.out, a.qos)
    return supervise.run_supervised(lambda: bench(a), "muon-ad bench transport")


def bench(a) -> int:
    rows = []
    plan = trials(tuple(a.candidates.split(",")))
    hosts = None
    if any(t.get("hosts") == 2 for t in plan):
        try:
            hosts = TwoHosts().__enter__()
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"two-host trials skipped: {exc}", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for res in a.resolutions.split(","):
                w, h = (int(v) for v in res.split("x"))
                for t in plan:
                    row = run_trial(t, w, h, a.rate, a.seconds, a.domain, Path(tmp), hosts)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        if hosts:
            hosts.__exit__()
    result = {"machine": machine(), "fastdds": distro.report()[:4], "rate_hz": a.rate, "seconds": a.seconds,
              "trials": rows}
    write_report(Path(a.out), "bench_transport", result, markdown(result))
    return 0 if any("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
