"""The `muon-ad` command: distill, stylize, eval, export, make-recording and benchmarks.

Each subcommand lives in its own module with a main(argv); this file only dispatches, so
`muon-ad --help` works without importing torch or ROS.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "run": ("muon_ad_ros.launcher.cli", "run the edge graph without ros2 launch until Ctrl-C"),
    "demo": ("muon_ad_ros.launcher.cli", "the graph on a recording for a bounded time; saves its output"),
    "record": ("muon_ad_ros.launcher.cli", "record what a running graph publishes into MCAP (ros2 bag, Foxglove)"),
    "soak": ("muon_ad_ros.launcher.cli", "the demo graph for a long time; stability report"),
    "distill": ("muon_ad_ros.train.distill", "distill a real-time student for one style image (Muon + AD loss)"),
    "stylize": ("muon_ad_ros.train.stylize", "per-image Muon-AD optimization (offline, highest quality)"),
    "eval": ("muon_ad_ros.train.evaluate", "contact sheet and metrics against the CPU peer"),
    "export": ("muon_ad_ros.train.export", "ONNX (FP32/FP16) bundle and TensorRT engines"),
    "make-recording": ("muon_ad_ros.camera.recording", "RealSense recording from bundled photographs"),
    "gpu-check": ("muon_ad_ros.bench.gpu_check", "every GPU path once (torch CUDA, TensorRT, ORT CUDA, distill)"),
}
BENCHES = {
    "model": ("muon_ad_ros.bench.model", "student latency per resolution/backend/retention vs the peer"),
    "detect": ("muon_ad_ros.bench.detect", "detector latency per backend at 640x480 and accuracy on labelled frames"),
    "method": ("muon_ad_ros.bench.method", "Muon vs AdamW over seeds, the ablation, the pruning curve"),
    "compressed": ("muon_ad_ros.bench.compressed", "<image>/compressed encoding cost per frame"),
    "order": ("muon_ad_ros.bench.order", "channel orders (importance, L1, random) of the pruned levels"),
    "graph": ("muon_ad_ros.bench.graph", "the edge graph at fixed camera rates, max sustainable rate"),
    "transport": ("muon_ad_ros.bench.transport", "Fast DDS transports side by side, to/from default processes"),
    "startup": ("muon_ad_ros.bench.startup", "the whole graph started N times at once: time to the first frames"),
    "discovery": ("muon_ad_ros.bench.discovery", "subscription wait when participants start apart (announcement burst)"),
}


def _usage() -> str:
    lines = ["usage: muon-ad <command> [options]   (muon-ad <command> --help for its options)", ""]
    lines += [f"  {name:<15} {doc}" for name, (_, doc) in COMMANDS.items()]
    lines += [f"  bench {name:<9} {doc}" for name, (_, doc) in BENCHES.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "bench":
        if not rest or rest[0] not in BENCHES:
            print(_usage(), file=sys.stderr)
            return 2
        module = BENCHES[rest[0]][0]
        rest = rest[1:]
    elif cmd in COMMANDS:
        module = COMMANDS[cmd][0]
        if module == "muon_ad_ros.launcher.cli":
            rest = [cmd] + rest     # one parser holds run, demo and soak
    else:
        print(f"muon-ad: unknown command {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return int(importlib.import_module(module).main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
