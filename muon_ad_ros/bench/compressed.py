"""`python -m muon_ad_ros.bench.compressed` (make bench-compressed): what a `<image>/compressed` twin costs
per frame on this machine: JPEG of 640x480 rgb8 at several qualities and 16-bit PNG of 640x480 depth at
several levels, the encoding the nodes do while someone subscribes (colour conversion included). CPU
time of the encoding thread and wall time per frame, p50/p90/p99, and the compressed size.

The frames are the bundled photographs (colour) and their depth layouts (smooth synthetic depth: a real
sensor's noisy depth compresses worse and takes longer)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from muon_ad_ros.bench.report import write_report
from muon_ad_ros.measure import machine, percentiles
from muon_ad_ros.camera import recording as rec
from muon_ad_ros.nodes.compressed import encode


def frames(width: int = 640, height: int = 480) -> list[tuple[np.ndarray, np.ndarray]]:
    """Returns (rgb8, depth uint16 mm) pairs of the bundled scenes at width x height."""
    out = []
    for s in rec.bundled_scenes():
        rgb = np.ascontiguousarray(cv2.resize(s.rgb, (width, height), interpolation=cv2.INTER_AREA))
        depth = cv2.resize(s.depth_m, (width, height), interpolation=cv2.INTER_NEAREST)
        out.append((rgb, np.clip(depth * 1000.0, 0, 65535).astype(np.uint16)))
    return out


def measure(images: list[np.ndarray], encoding: str, repeats: int, **opts) -> dict:
    """Returns per-frame CPU and wall milliseconds and the mean compressed size of encoding `images`."""
    cpu, wall, sizes = [], [], []
    for k in range(repeats):
        img = images[k % len(images)]
        c0, w0 = time.thread_time(), time.perf_counter()
        data, fmt = encode(img, encoding, **opts)
        wall.append((time.perf_counter() - w0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
        sizes.append(len(data))
    raw = images[0].nbytes
    return {"format": fmt, "cpu_ms": percentiles(cpu), "wall_ms": percentiles(wall),
            "kib": round(float(np.mean(sizes)) / 1024, 1), "ratio": round(raw / float(np.mean(sizes)), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="muon-ad bench compressed", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=200, help="frames encoded per setting")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--out", type=Path, default=Path("out/bench"))
    a = p.parse_args(argv)
    # OpenCV's own thread pool does not take part in imencode; one thread keeps CPU time = thread time.
    cv2.setNumThreads(1)
    pairs = frames(a.width, a.height)
    rgb, depth = [c for c, _ in pairs], [d for _, d in pairs]
    encode(rgb[0], "rgb8")      # first call loads the codec
    rows = {}
    for q in (50, 80, 95):
        rows[f"jpeg q{q} rgb8"] = measure(rgb, "rgb8", a.repeats, jpeg_quality=q)
    for level in (1, 3, 6):
        rows[f"png level {level} 16UC1"] = measure(depth, "16UC1", a.repeats, png_level=level)
    result = {"machine": machine("cv2", "numpy"), "size": [a.width, a.height], "repeats": a.repeats, "rows": rows}
    md = [f"# <image>/compressed: encoding cost per frame ({a.width}x{a.height}, {a.repeats} frames each)", "",
          f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, load "
          f"{result['machine']['load_average'][0]:.2f}; OpenCV {result['machine'].get('cv2', '?')}", "",
          "| setting | format | CPU ms p50 / p90 / p99 | wall ms p50 / p99 | size KiB | ratio |",
          "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        c, w = r["cpu_ms"], r["wall_ms"]
        md.append(f"| {name} | `{r['format']}` | {c['p50']} / {c['p90']} / {c['p99']} | {w['p50']} / {w['p99']} | "
                  f"{r['kib']} | {r['ratio']}x |")
    print("\n".join(md))
    write_report(a.out, "compressed", result, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
