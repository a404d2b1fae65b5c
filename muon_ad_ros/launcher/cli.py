"""The graph without `ros2 launch`: `muon-ad run` (until Ctrl-C or SIGTERM), `muon-ad demo` (bounded, records
its output) and `muon-ad soak` (long run, stability report). SIGINT and SIGTERM stop every node process
cleanly and exit 0 (launcher/supervise.py); a node whose name already runs on the graph is refused (exit 1).

  muon-ad run  [--cameras realsense] [--recording PATH] ...
  muon-ad demo --seconds 40 --out out/demo
  python -m muon_ad_ros.launcher.cli record --out graph.mcap [--seconds 30] [--raw-images]
"""
from __future__ import annotations

import argparse
import sys
import time

from muon_ad_ros.launcher import demo, record, supervise
from muon_ad_ros.launcher.processes import GraphProcesses, _graph_args, specs_from_args


def cmd_run(a) -> int:
    g = GraphProcesses(specs_from_args(a), a.log_dir, name_check_s=a.name_check).start()
    try:
        print(f"graph running ({', '.join(g.procs)}); logs in {g.log_dir}; Ctrl-C or SIGTERM stops it", flush=True)
        while all(g.alive().values()):
            time.sleep(0.5)
        print(f"a node exited: {g.alive()}", file=sys.stderr)
        return 1
    finally:
        codes = g.stop()
        print(f"graph stopped; exit codes: {codes}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="muon-ad", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the edge graph until Ctrl-C or SIGTERM")
    _graph_args(run)
    run.add_argument("--log-dir", default=None)
    dem = sub.add_parser("demo", help="run the demo graph on a recording for a bounded time and save its output")
    _graph_args(dem)
    dem.add_argument("--seconds", type=float, default=40.0)
    dem.add_argument("--out", default="out/demo")
    soak = sub.add_parser("soak", help="run the demo graph for a long time and report stability")
    _graph_args(soak)
    soak.add_argument("--seconds", type=float, default=600.0)
    soak.add_argument("--out", default="out/soak")
    rec = sub.add_parser("record", help="record what a running graph publishes into an MCAP file (ros2 bag, Foxglove)")
    rec.add_argument("--out", default="out/graph.mcap")
    rec.add_argument("--seconds", type=float, default=0.0, help="0 = until Ctrl-C")
    rec.add_argument("--namespace", default="")
    rec.add_argument("--cameras", default="realsense", help="which camera image to record (as the graph's --cameras)")
    rec.add_argument("--style-input", default="")
    rec.add_argument("--raw-images", action="store_true", help="the raw images instead of their /compressed twins")
    a = ap.parse_args(argv)
    programs = {"record": record.record, "run": cmd_run, "demo": demo.run_demo, "soak": demo.run_soak}
    return supervise.run_supervised(lambda: programs[a.cmd](a), f"muon-ad {a.cmd}")


if __name__ == "__main__":
    raise SystemExit(main())
