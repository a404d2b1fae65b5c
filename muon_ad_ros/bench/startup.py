"""`muon-ad bench startup`: the whole edge graph (RealSense recording, style, detection, controller)
started N times with every node process started at once, as `ros2 launch` does; reported per start:
seconds from spawning the processes to the first camera frame, first stylized frame and first
detections seen by a separate observer process (this one), as percentiles with the count over 5 s.
Writes bench_startup.json and bench_startup.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from muon_ad_ros.bench.report import machine, percentiles, write_report

LIMIT_S = 5.0


def first_after(col, kind: str, t0: float) -> float | None:
    """Returns seconds from t0 to the collector's first `kind` message after t0, or None."""
    with col.lock:
        times = [t for t, _ in col.arrivals[kind] if t >= t0]
    return times[0] - t0 if times else None


def run(starts: int, timeout: float, out: Path, stagger: float = 0.0) -> dict:
    from muon_ad_ros import graph
    from muon_ad_ros.launcher.demo import Collector, ensure_recording
    from muon_ad_ros.launcher.processes import GraphProcesses
    specs = graph.edge_graph(("realsense",), recording=str(ensure_recording()))
    col = Collector()
    rows = []
    try:
        for k in range(starts):
            g = GraphProcesses(specs, out / "logs" / f"start_{k:03d}")
            g.stagger = stagger
            t0 = time.time()
            g.start()
            while time.time() < t0 + timeout and (first_after(col, "stylized", t0) is None
                                                  or first_after(col, "detections", t0) is None):
                time.sleep(0.02)
            row = {"start": k, **{f"first_{kind}_s": first_after(col, kind, t0)
                                  for kind in ("raw", "stylized", "detections")}}
            codes = g.stop()
            row["exit_codes"] = codes
            rows.append(row)
            print(row, flush=True)
            time.sleep(0.5)     # the last samples of the stopped graph drain before the next start
    finally:
        col.close()
    styl = [r["first_stylized_s"] for r in rows]
    reached = [s for s in styl if s is not None]
    return {"machine": machine(), "starts": starts, "stagger_s": stagger, "timeout_s": timeout,
            "first_stylized_s": percentiles(reached),
            "first_raw_s": percentiles([r["first_raw_s"] for r in rows if r["first_raw_s"] is not None]),
            "first_detections_s": percentiles([r["first_detections_s"] for r in rows
                                               if r["first_detections_s"] is not None]),
            "never": sum(s is None for s in styl), f"over_{LIMIT_S:g}_s": sum(s is None or s > LIMIT_S for s in styl),
            "rows": rows}


def markdown(r: dict) -> str:
    s, c, d = r["first_stylized_s"], r["first_raw_s"], r["first_detections_s"]
    return "\n".join([
        f"# Start-up: the edge graph started {r['starts']} times, node processes {r['stagger_s']:g} s apart", "",
        f"Machine: {r['machine']['cpu']} ({r['machine']['cores']} cores). Seconds from spawning the node "
        "processes to the first message seen by an observer process.", "",
        "| first | p50 s | p90 s | p99 s | max s | never | over 5 s |", "|---|---|---|---|---|---|---|",
        f"| camera frame | {c['p50']} | {c['p90']} | {c['p99']} | {c['max']} | | |",
        f"| stylized frame | {s['p50']} | {s['p90']} | {s['p99']} | {s['max']} | {r['never']} | "
        f"{r[f'over_{LIMIT_S:g}_s']} |",
        f"| detections | {d['p50']} | {d['p90']} | {d['p99']} | {d['max']} | {r['starts'] - d['n']} | |", ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="muon-ad bench startup", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds one start may take")
    ap.add_argument("--stagger", type=float, default=0.0, help="seconds between node process starts")
    ap.add_argument("--out", default="out/bench")
    a = ap.parse_args(argv)
    out = Path(a.out)
    result = run(a.starts, a.timeout, out, a.stagger)
    write_report(out, "bench_startup", result, markdown(result))
    return 0 if result["never"] < a.starts else 1


if __name__ == "__main__":
    raise SystemExit(main())
