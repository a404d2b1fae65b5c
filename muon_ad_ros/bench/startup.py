"""`muon-ad bench startup`: the whole edge graph (RealSense recording, style, detection, controller)
started N times with every node process started at once, as `ros2 launch` does; reported per start:
seconds from spawning the processes to the first camera frame, first stylized frame and first
detections seen by an observer (this process), and until a process in the default ROS 2 environment
(no Fast DDS variable, as `ros2 node list` / `ros2 param get` run) lists every node and has read the
style node's retention parameter; percentiles with the count over 5 s. Also per start: seconds until the
nodes were let onto the graph, after the check for running nodes of the same names (--name-check 0 skips it).
Writes bench_startup.json and bench_startup.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import json
import os
import subprocess
import sys
import threading

from muon_ad_ros.bench.report import write_report
from muon_ad_ros.launcher import names, supervise
from muon_ad_ros.launcher.processes import GraphProcesses, seconds_arg
from muon_ad_ros.measure import machine, percentiles

LIMIT_S = 5.0
NODES = ("realsense_camera", "style_transfer", "detection", "controller")


def watch(seconds: float) -> int:
    """Runs as the default-environment process: prints a JSON line with the wall time whenever the set of
    listed graph nodes changes, and when a get_parameters call on a newly listed style node returns. A line on
    stdin starts a new start: the next style node listed is asked again, as a `ros2 param get` typed after a
    restart would (a graph restarted before this process saw the old nodes leave keeps the same names)."""
    import select

    import rclpy
    from rcl_interfaces.srv import GetParameters
    from muon_ad_ros.nodes.spin import close_ros
    rclpy.init()
    node = rclpy.create_node("startup_watch")
    client = node.create_client(GetParameters, "/style_transfer/get_parameters")
    seen: set = set()
    future, asked = None, 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.01)
        if select.select([sys.stdin], [], [], 0)[0]:
            if not sys.stdin.readline():
                break                               # the benchmark ended
            future, seen = None, set()
        names = {n for n in node.get_node_names() if n in NODES}
        if names != seen:
            if "style_transfer" not in names:
                future = None
            seen = names
            print(json.dumps({"t": time.time(), "nodes": sorted(names)}), flush=True)
        # a request sent while the service's reply path is still being matched is never answered: ask
        # again after a second, as `ros2 param get` run again would
        retry = future is not None and not future.done() and time.monotonic() - asked > 1.0
        if "style_transfer" in names and (future is None or retry) and client.service_is_ready():
            future, asked = client.call_async(GetParameters.Request(names=["retention"])), time.monotonic()
            future.add_done_callback(lambda f: print(json.dumps({"t": time.time(), "param": True}), flush=True))
    close_ros(node)
    return 0


class Watcher:
    """The default-environment process and what it printed, with receipt order kept."""

    def __init__(self, seconds: float):
        from muon_ad_ros.bench.transport import FASTDDS_VARS
        env = {k: v for k, v in os.environ.items() if k not in FASTDDS_VARS}
        self.proc = supervise.spawn([sys.executable, "-m", "muon_ad_ros.bench.startup", "_watch", str(seconds)],
                                    env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def all_listed_after(self, t0: float) -> float | None:
        """Returns seconds from t0 to the first report after it that lists every node."""
        return next((e["t"] - t0 for e in list(self.lines) if e["t"] >= t0 and len(e.get("nodes", ())) == len(NODES)),
                    None)

    def param_after(self, t0: float) -> float | None:
        return next((e["t"] - t0 for e in list(self.lines) if e["t"] >= t0 and e.get("param")), None)

    def begin(self):
        """Tells the process a new start begins."""
        self.proc.stdin.write("start\n")
        self.proc.stdin.flush()

    def close(self):
        self.proc.kill()
        self.proc.wait()


def first_after(col, kind: str, t0: float) -> float | None:
    """Returns seconds from t0 to the collector's first `kind` message after t0, or None."""
    with col.lock:
        times = [t for t, _ in col.arrivals[kind] if t >= t0]
    return times[0] - t0 if times else None


def run(starts: int, timeout: float, out: Path, stagger: float = 0.0, name_check: float = names.WAIT_S) -> dict:
    from muon_ad_ros import graph
    from muon_ad_ros.launcher.demo import Collector, ensure_recording
    specs = graph.edge_graph(("realsense",), recording=str(ensure_recording()))
    col = Collector()
    watcher = Watcher(starts * (timeout + 10) + 60)
    rows = []
    try:
        for k in range(starts):
            g = GraphProcesses(specs, out / "logs" / f"start_{k:03d}", name_check_s=name_check)
            g.stagger = stagger
            watcher.begin()
            t0 = time.time()
            try:
                g.start()
                joined = time.time() - t0
                while time.time() < t0 + timeout and (first_after(col, "stylized", t0) is None
                                                      or first_after(col, "detections", t0) is None
                                                      or watcher.param_after(t0) is None
                                                      or watcher.all_listed_after(t0) is None):
                    time.sleep(0.02)
                row = {"start": k, "spawned_at": round(t0, 3), "allowed_on_graph_s": round(joined, 3),
                       **{f"first_{kind}_s": first_after(col, kind, t0) for kind in ("raw", "stylized", "detections")},
                       "default_process_lists_all_s": watcher.all_listed_after(t0),
                       "default_process_read_param_s": watcher.param_after(t0)}
            finally:
                codes = g.stop()
            row["exit_codes"] = codes
            rows.append(row)
            print(row, flush=True)
            # the stopped graph leaves the default process's node list before the next start
            deadline = time.time() + 10
            while time.time() < deadline and (not watcher.lines or watcher.lines[-1].get("nodes")):
                time.sleep(0.05)
    finally:
        col.close()
        watcher.close()
    styl = [r["first_stylized_s"] for r in rows]
    reached = [s for s in styl if s is not None]
    return {"machine": machine(), "starts": starts, "stagger_s": stagger, "timeout_s": timeout,
            "name_check_wait_s": name_check,
            "allowed_on_graph_s": percentiles([r["allowed_on_graph_s"] for r in rows]),
            "first_stylized_s": percentiles(reached),
            "first_raw_s": percentiles([r["first_raw_s"] for r in rows if r["first_raw_s"] is not None]),
            "first_detections_s": percentiles([r["first_detections_s"] for r in rows
                                               if r["first_detections_s"] is not None]),
            "default_process_lists_all_s": percentiles([r["default_process_lists_all_s"] for r in rows
                                                        if r["default_process_lists_all_s"] is not None]),
            "default_process_read_param_s": percentiles([r["default_process_read_param_s"] for r in rows
                                                         if r["default_process_read_param_s"] is not None]),
            "never": sum(s is None for s in styl), f"over_{LIMIT_S:g}_s": sum(s is None or s > LIMIT_S for s in styl),
            "rows": rows}


def markdown(r: dict) -> str:
    s, c, d = r["first_stylized_s"], r["first_raw_s"], r["first_detections_s"]
    n, p = r["default_process_lists_all_s"], r["default_process_read_param_s"]
    k = r["allowed_on_graph_s"]
    return "\n".join([
        f"# Start-up: the edge graph started {r['starts']} times, nodes joining the graph {r['stagger_s']:g} s "
        "apart", "",
        f"Machine: {r['machine']['cpu']} ({r['machine']['cores']} cores). Seconds from spawning the node "
        "processes to the first message seen by an observer process.", "",
        "| first | p50 s | p90 s | p99 s | max s | never | over 5 s |", "|---|---|---|---|---|---|---|",
        f"| camera frame | {c['p50']} | {c['p90']} | {c['p99']} | {c['max']} | | |",
        f"| stylized frame | {s['p50']} | {s['p90']} | {s['p99']} | {s['max']} | {r['never']} | "
        f"{r[f'over_{LIMIT_S:g}_s']} |",
        f"| detections | {d['p50']} | {d['p90']} | {d['p99']} | {d['max']} | {r['starts'] - d['n']} | |",
        f"| default process lists every node | {n['p50']} | {n['p90']} | {n['p99']} | {n['max']} | "
        f"{r['starts'] - n['n']} | |",
        f"| default process read a parameter | {p['p50']} | {p['p90']} | {p['p99']} | {p['max']} | "
        f"{r['starts'] - p['n']} | |",
        f"| nodes allowed onto the graph (name check, {r['name_check_wait_s']:g} s) | {k['p50']} | {k['p90']} | "
        f"{k['p99']} | {k['max']} | | |", ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="muon-ad bench startup", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds one start may take")
    ap.add_argument("--stagger", type=float, default=0.0,
                    help="seconds between the nodes joining the graph (their processes start together)")
    ap.add_argument("--name-check", type=seconds_arg, default=names.WAIT_S, metavar="SECONDS",
                    help="the start's look for running nodes of the same names (0 = none, to measure its cost)")
    ap.add_argument("--out", default="out/bench")
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["_watch"]:
        return watch(float(argv[1]))
    a = ap.parse_args(argv)
    return supervise.run_supervised(lambda: bench(a), "muon-ad bench startup")


def bench(a) -> int:
    out = Path(a.out)
    result = run(a.starts, a.timeout, out, a.stagger, a.name_check)
    write_report(out, "bench_startup", result, markdown(result))
    return 0 if result["never"] < a.starts else 1


if __name__ == "__main__":
    raise SystemExit(main())
