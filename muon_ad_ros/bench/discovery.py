"""`muon-ad bench discovery`: how long a subscription waits for its publisher when the processes of a
graph create their DDS participants at slightly different times, as a launch does (imports and model
loading spread them over a second or more).

Per trial one publisher (30 Hz, sensor-data QoS) and two subscriber processes are started at once, each
creating its node after a random delay of 0-`--spread` s, and a third subscriber was created `--early`
seconds before them (a viewer such as RViz that runs before the launch). Reported per subscription:
seconds from the moment the last node exists to its first sample. Arms:
- `shipped`: every process loads config/fastdds.xml;
- `fastdds_defaults`: the same profile without its <builtin> discovery settings (Fast DDS's 5
  announcements 100 ms apart, then one every 3 s);
- `mixed`: the publisher and the first subscriber load the profile, the second and the early one run in
  the default environment.
Writes bench_discovery.json and bench_discovery.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from muon_ad_ros.bench.report import write_report
from muon_ad_ros.launcher import supervise
from muon_ad_ros.measure import machine, percentiles

ROLES = ("pub", "sub1", "sub2", "early")
LATE_S = 1.0


def child(role: str, delay: float, t0: float, seconds: float) -> None:
    """One process of a trial: creates its node at t0 + delay, prints when, and (subscribers) when its
    first sample arrived, both relative to t0."""
    time.sleep(max(0.0, t0 + delay - time.time()))
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import String
    from muon_ad_ros.nodes.spin import close_ros
    rclpy.init()
    node = rclpy.create_node(f"discovery_{role}")
    created, first = time.time(), None
    if role == "pub":
        pub = node.create_publisher(String, "/discovery_bench", qos_profile_sensor_data)
        node.create_timer(1 / 30, lambda: pub.publish(String(data="x")))
        print(json.dumps({"created": created - t0, "first": None}), flush=True)   # it publishes until killed
    else:
        def on_sample(_):
            nonlocal first
            first = first or time.time()
        node.create_subscription(String, "/discovery_bench", on_sample, qos_profile_sensor_data)
    while time.time() < t0 + seconds and (role == "pub" or first is None):
        rclpy.spin_once(node, timeout_sec=0.02)
    if role != "pub":
        print(json.dumps({"created": created - t0, "first": None if first is None else first - t0}), flush=True)
    close_ros(node)


def without_discovery_settings(profile: Path, folder: Path) -> Path:
    """Returns a copy of the profile without its <builtin> block (Fast DDS's default announcements)."""
    text = re.sub(r"\s*<builtin>.*?</builtin>", "", profile.read_text(), flags=re.S)
    path = folder / "fastdds_defaults.xml"
    path.write_text(text)
    return path


def child_result(proc: subprocess.Popen, role: str, limit_s: float) -> dict:
    """Returns the result line a child prints before its teardown; a child still running after limit_s is
    killed (its line, printed first, is kept), so a stuck teardown costs the run seconds, not the run."""
    try:
        out = proc.communicate(timeout=limit_s)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
    line = next((l for l in out.splitlines() if l.strip()), None)
    if line is None:
        raise RuntimeError(f"discovery child {role!r} printed no result (exit status {proc.returncode})")
    return json.loads(line)


def trial(envs: dict, spread: float, early: float, seconds: float) -> list[float | None]:
    """Returns each subscription's seconds from the last node's creation to its first sample (None: never):
    [sub1, sub2, early]."""
    t0 = time.time() + 1.0
    delays = {role: early + random.uniform(0, spread) for role in ROLES}
    delays["early"] = 0.0
    procs = [supervise.spawn([sys.executable, "-m", "muon_ad_ros.bench.discovery", "_child", role,
                              str(delays[role]), str(t0), str(seconds + early)],
                             stdout=subprocess.PIPE, text=True, env=envs[role]) for role in ROLES]
    limit = 1.0 + max(delays.values()) + seconds + early + 30.0  # its run, then close_ros's 5 s and start-up
    outs = [json.loads(procs[0].stdout.readline())] + [child_result(p, role, limit)
                                                       for p, role in zip(procs[1:], ROLES[1:])]
    procs[0].kill()
    procs[0].communicate()
    ready = max(o["created"] for o in outs)
    return [None if o["first"] is None else round(o["first"] - ready, 3) for o in outs[1:]]


def run(trials: int, spread: float, early: float, seconds: float, domain: int) -> dict:
    from muon_ad_ros import distro, graph
    from muon_ad_ros.bench.transport import FASTDDS_VARS
    default = {k: v for k, v in os.environ.items() if k not in FASTDDS_VARS}
    default.update(ROS_DOMAIN_ID=str(domain), RMW_IMPLEMENTATION="rmw_fastrtps_cpp")
    arms = {}
    with tempfile.TemporaryDirectory() as tmp:
        profiles = {"shipped": graph.transport_profile(),
                    "fastdds_defaults": without_discovery_settings(graph.transport_profile(), Path(tmp))}
        envs = {}
        for name, profile in profiles.items():   # transport_env keeps a profile the environment names
            env = {**default, **graph.transport_env({**default, distro.PROFILE_VAR: str(profile)})}
            envs[name] = {role: env for role in ROLES}
        envs["mixed"] = {"pub": envs["shipped"]["pub"], "sub1": envs["shipped"]["sub1"], "sub2": default,
                         "early": default}
        for name, arm_envs in envs.items():
            gaps = []
            for k in range(trials):
                gaps.append(trial(arm_envs, spread, early, seconds))
                print(name, k, gaps[-1], flush=True)
            arms[name] = {"started_together": summary([g for row in gaps for g in row[:2]]),
                          "started_early": summary([row[2] for row in gaps]), "trials": gaps}
    return {"machine": machine(), "trials": trials, "spread_s": spread, "early_s": early, "timeout_s": seconds,
            "arms": arms}


def summary(gaps: list) -> dict:
    return {"subscriptions": len(gaps), "never": sum(g is None for g in gaps),
            f"over_{LATE_S:g}_s": sum(g is None or g > LATE_S for g in gaps),
            "wait_s": percentiles([max(g, 0.0) for g in gaps if g is not None])}


def markdown(r: dict) -> str:
    lines = [f"# Discovery: 1 publisher + 2 subscribers created within {r['spread_s']:g} s, 1 subscriber "
             f"created {r['early_s']:g} s before them; {r['trials']} trials per arm", "",
             f"Machine: {r['machine']['cpu']} ({r['machine']['cores']} cores). Seconds from the last node's "
             "creation to each subscription's first sample.", "",
             f"| arm | subscriber | subscriptions | p50 s | p90 s | p99 s | max s | over {LATE_S:g} s | never |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, a in r["arms"].items():
        for when in ("started_together", "started_early"):
            w, c = a[when]["wait_s"], a[when]
            lines.append(f"| {name} | {when.replace('_', ' ')} | {c['subscriptions']} | {w['p50']} | {w['p90']} | "
                         f"{w['p99']} | {w['max']} | {c[f'over_{LATE_S:g}_s']} | {c['never']} |")
    return "\n".join(lines + [""])


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        child(argv[1], float(argv[2]), float(argv[3]), float(argv[4]))
        return 0
    ap = argparse.ArgumentParser(prog="muon-ad bench discovery", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--spread", type=float, default=1.5, help="nodes are created within this many seconds")
    ap.add_argument("--early", type=float, default=4.0, help="seconds the early subscriber exists before the rest")
    ap.add_argument("--timeout", type=float, default=8.0, help="seconds a subscription may wait")
    ap.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "0") or 0))
    ap.add_argument("--out", default="out/bench")
    a = ap.parse_args(argv)
    return supervise.run_supervised(lambda: bench(a), "muon-ad bench discovery")


def bench(a) -> int:
    result = run(a.trials, a.spread, a.early, a.timeout, a.domain)
    write_report(Path(a.out), "bench_discovery", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
