"""`muon-ad bench detect`: per-backend detection latency at 640x480 on this machine (p50/p90/p99 of
detect() on the bundled photographs, preprocessing and NMS included), written as JSON and Markdown.

No real YOLO weights can be downloaded here, so onnxruntime runs a synthetic random-weight network of
YOLOv8n-like cost (detect/synthetic.py; ~4.1 GMACs at 640 vs YOLOv8n's 4.4): its latency is
representative, its detections are meaningless. Give --model to time a real export instead."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from muon_ad_ros.measure import machine
from muon_ad_ros.detect import DetectorConfig, make_detector
from muon_ad_ros.detect.synthetic import conv_yolo_model

DATA = Path(__file__).resolve().parent.parent / "data"
YOLOV8N_GMACS = 4.4   # Ultralytics' published 8.7 GFLOPs at 640


def ort_providers() -> list[str]:
    import onnxruntime as ort
    return ort.get_available_providers()


def frames() -> list[np.ndarray]:
    """Returns the bundled photographs as 640x480 RGB frames."""
    out = []
    for path in sorted(DATA.glob("*.jpg")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        out.append(np.ascontiguousarray(cv2.resize(rgb, (640, 480)) if rgb.shape[:2] != (480, 640) else rgb))
    return out


def time_detector(cfg: DetectorConfig, images: list[np.ndarray], runs: int, warmup: int = 3) -> dict:
    """Returns latency percentiles (ms) of detect() over `runs` frames, or why the backend cannot run."""
    try:
        det = make_detector(cfg, log=lambda msg: None)
    except Exception as exc:
        return {"available": False, "reason": str(exc)}
    if det.name != cfg.backend:
        return {"available": False, "reason": det.fallback}
    for i in range(warmup):
        det.detect(images[i % len(images)])
    ms, counts = [], []
    for i in range(runs):
        t0 = time.perf_counter()
        boxes = det.detect(images[i % len(images)])
        ms.append((time.perf_counter() - t0) * 1e3)
        counts.append(len(boxes))
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"available": True, "runs": runs, "p50_ms": round(p50, 1), "p90_ms": round(p90, 1),
            "p99_ms": round(p99, 1), "mean_ms": round(float(np.mean(ms)), 1), "fps_at_p50": round(1e3 / p50, 1),
            "detections_per_frame": round(float(np.mean(counts)), 2), "runs_as": det.describe()}


def cases(model: str, synthetic: bool) -> list[tuple[str, DetectorConfig, str]]:
    """Returns (label, config, note) of every measured configuration."""
    hog = DetectorConfig(backend="opencv_hog")
    yolo = DetectorConfig(backend="onnxruntime", model_path=model, device="cpu")
    what = "synthetic YOLOv8n-sized net" if synthetic else os.path.basename(model)
    return [
        ("opencv_hog native 640x480", hog, "default; people >= ~100 px tall"),
        ("opencv_hog input_size 960", replace(hog, input_size=960), "upscaled: finds people down to ~60 px"),
        ("opencv_hog input_size 480", replace(hog, input_size=480), "downscaled for speed: people >= ~130 px"),
        ("opencv_hog native, 1 thread", replace(hog, threads=1), "beside the style node"),
        ("onnxruntime fp32 640", yolo, what),
        ("onnxruntime fp32 640, 1 thread", replace(yolo, threads=1), what),
        ("onnxruntime fp16 640", replace(yolo, precision="fp16"), what + ", converted to fp16 at load"),
        ("tensorrt fp16 640", DetectorConfig(backend="tensorrt", model_path=model), what),
        ("tensorrt fp16 640 DLA0", DetectorConfig(backend="tensorrt", model_path=model, dla_core=0), what),
    ]


def to_markdown(report: dict) -> str:
    """Returns the report as a Markdown table with the machine above it."""
    m = report["machine"]
    lines = [f"# Detection latency at 640x480 ({report['date']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average'][0]:.2f} at start and "
             f"{m.get('load_average_1m_end', '?')} at the end (other processes share the cores); OpenCV {m['cv2']}, "
             f"onnxruntime {m['onnxruntime']} ({', '.join(m['onnxruntime_providers'])}).", "",
             f"Command: `{report['command']}`", "", report["model_note"], "",
             "| configuration | runs as | p50 ms | p90 ms | p99 ms | FPS at p50 | boxes/frame | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        if r["available"]:
            lines.append(f"| {r['label']} | {r['runs_as']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
                         f"{r['fps_at_p50']} | {r['detections_per_frame']} | {r['note']} |")
        else:
            lines.append(f"| {r['label']} | not run here | | | | | | {r['reason']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Runs the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(prog="muon-ad bench detect", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/bench", help="folder for detect_bench.json and detect_bench.md")
    p.add_argument("--runs", type=int, default=40, help="timed frames per configuration")
    p.add_argument("--model", default="", help="a real YOLO .onnx to time instead of the synthetic network")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    images = frames()
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if model:
            note = f"onnxruntime/tensorrt model: {os.path.abspath(model)}."
        else:
            model = os.path.join(tmp, "synthetic_yolov8n_640.onnx")
            gmacs = conv_yolo_model(model) / 1e9
            note = (f"onnxruntime/tensorrt model: no real YOLO weights are installable here, so a synthetic "
                    f"random-weight YOLOv8-layout network ({gmacs:.2f} GMACs at 640x640; YOLOv8n: {YOLOV8N_GMACS}) "
                    "stands in: latency is representative, its boxes are not.")
        report = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["muon-ad bench detect", *(argv or [])]),
                  "machine": {**machine("cv2", "onnxruntime"), "onnxruntime_providers": ort_providers()}, "model_note": note, "results": []}
        print(json.dumps(report["machine"], indent=1))
        for label, cfg, case_note in cases(model, not a.model):
            result = {"label": label, "note": case_note, **time_detector(cfg, images, a.runs)}
            report["results"].append(result)
            shown = (f"p50 {result['p50_ms']} / p90 {result['p90_ms']} / p99 {result['p99_ms']} ms  [{result['runs_as']}]"
                     if result["available"] else f"not available: {result['reason']}")
            print(f"{label:34s} {shown}", flush=True)
    report["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    (out / "detect_bench.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "detect_bench.md").write_text(to_markdown(report))
    print(f"wrote {out / 'detect_bench.json'} and {out / 'detect_bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
