"""`muon-ad bench detect`: per-backend detection latency at 640x480 and accuracy on labelled frames, side
by side, on this machine. Latency: p50/p90/p99 of detect() on the bundled photographs, preprocessing and
NMS included. Accuracy: precision and recall per class at IoU 0.5 on the 30 hand-labelled frames of
data/coco_eval.json (bench/accuracy.py), at each configuration's default thresholds.

The default detector is the bundled SSD MobileNet-v2 COCO (onnxruntime), beside the same network through
OpenCV DNN and the HOG people detector. No YOLO weights can be downloaded here, so the YOLO rows run a
synthetic random-weight network of YOLOv8n-like cost (detect/synthetic.py; ~4.1 GMACs at 640 vs
YOLOv8n's 4.4): its latency is representative, its detections are meaningless. Give --model to time a
real export instead."""
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

from muon_ad_ros.bench import accuracy
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


def time_detector(det, images: list[np.ndarray], runs: int, warmup: int = 3) -> dict:
    """Returns latency percentiles (ms) of det.detect() over `runs` frames."""
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


def measure(cfg: DetectorConfig, images: list[np.ndarray], runs: int, labelled) -> dict:
    """Returns the latency (and, given labelled frames, the accuracy) of one configuration, or why the
    backend cannot run here."""
    try:
        det = make_detector(cfg, log=lambda msg: None)
    except Exception as exc:
        return {"available": False, "reason": str(exc)}
    if det.name != cfg.backend:
        return {"available": False, "reason": det.fallback}
    result = time_detector(det, images, runs)
    if labelled:
        boxes = [det.detect(f.rgb) for f in labelled]
        result["accuracy"] = accuracy.evaluate(boxes, labelled)
        # HOG's boxes carry its 64x128 window's margin: IoU 0.3 tells loose boxes from misses
        result["accuracy_iou_0.3"] = accuracy.evaluate(boxes, labelled, 0.3)
    return result


def cases(model: str, synthetic: bool) -> list[tuple[str, DetectorConfig, str, bool]]:
    """Returns (label, config, note, measure accuracy) of every measured configuration."""
    ssd = DetectorConfig(backend="onnxruntime", device="cpu", threads=2)
    dnn = DetectorConfig(backend="opencv_dnn", threads=2)
    hog = DetectorConfig(backend="opencv_hog")
    yolo = DetectorConfig(backend="onnxruntime", model_path=model, device="cpu")
    what = "synthetic YOLOv8n-sized net" if synthetic else os.path.basename(model)
    return [
        ("onnxruntime coco_ssd int8, 2 threads", ssd, "default: SSD MobileNet-v2 COCO (bundled ONNX), 300x300", True),
        ("onnxruntime coco_ssd int8, 1 thread", replace(ssd, threads=1), "as beside the style node", False),
        ("onnxruntime coco_ssd fp32, 2 threads", replace(ssd, precision="fp32"), "the float model", True),
        ("onnxruntime coco_ssd fp32, 1 thread", replace(ssd, precision="fp32", threads=1), "", False),
        ("opencv_dnn coco_ssd, 2 threads", dnn, "the same network from its TensorFlow graph", True),
        ("opencv_dnn coco_ssd, 1 thread", replace(dnn, threads=1), "", False),
        ("opencv_hog native 640x480", hog, "people >= ~100 px tall", True),
        ("opencv_hog input_size 960", replace(hog, input_size=960), "upscaled: finds people down to ~60 px", True),
        ("opencv_hog input_size 480", replace(hog, input_size=480), "downscaled for speed: people >= ~130 px", False),
        ("opencv_hog native, 1 thread", replace(hog, threads=1), "beside the style node", False),
        ("onnxruntime fp32 640", yolo, what, not synthetic),
        ("onnxruntime fp32 640, 1 thread", replace(yolo, threads=1), what, False),
        ("onnxruntime fp16 640", replace(yolo, precision="fp16"), what + ", converted to fp16 at load", False),
        ("tensorrt coco_ssd fp16", DetectorConfig(backend="tensorrt"), "the bundled SSD as an engine", False),
        ("tensorrt coco_ssd fp16 DLA0", DetectorConfig(backend="tensorrt", dla_core=0), "the bundled SSD", False),
        ("tensorrt fp16 640", DetectorConfig(backend="tensorrt", model_path=model), what, False),
    ]


def pr(stats: dict | None) -> str:
    """Returns 'precision / recall (tp/labelled, fp)' of one class's accuracy, or '-'."""
    if not stats or (not stats["labelled"] and not stats["fp"]):
        return "-"
    p = "-" if stats["precision"] is None else f"{stats['precision']:.2f}"
    r = "-" if stats["recall"] is None else f"{stats['recall']:.2f}"
    return f"{p} / {r} ({stats['tp']}/{stats['labelled']}, {stats['fp']} FP)"


def accuracy_markdown(report: dict) -> list[str]:
    """Returns the accuracy table: a row per labelled class (and one for detections of other classes),
    a column per configuration measured."""
    measured = [r for r in report["results"] if r.get("accuracy")]
    if not measured:
        return []
    labelled = sorted({c for r in measured for c, s in r["accuracy"]["classes"].items() if s["labelled"]})
    lines = ["", f"Accuracy on {measured[0]['accuracy']['frames']} hand-labelled frames (data/coco_eval.json): "
                 "precision / recall at IoU 0.5 (true positives/labelled, false positives), default thresholds.", "",
             "| class | " + " | ".join(r["label"] for r in measured) + " |", "|---" * (len(measured) + 1) + "|"]
    for c in labelled:
        lines.append(f"| {c} | " + " | ".join(pr(r["accuracy"]["classes"].get(c)) for r in measured) + " |")
    other = []
    for r in measured:
        fp = sum(s["fp"] for c, s in r["accuracy"]["classes"].items() if c not in labelled)
        names = sorted(c for c, s in r["accuracy"]["classes"].items() if c not in labelled and s["fp"])
        other.append(f"{fp} FP ({', '.join(names)})" if fp else "0 FP")
    lines.append("| other classes | " + " | ".join(other) + " |")
    lines.append("| all | " + " | ".join(pr(r["accuracy"]["all"]) for r in measured) + " |")
    lines.append("| person at IoU 0.3 | " + " | ".join(pr(r["accuracy_iou_0.3"]["classes"].get("person"))
                                                      for r in measured) + " |")
    return lines


def to_markdown(report: dict) -> str:
    """Returns the report as Markdown tables (latency, then accuracy) with the machine above them."""
    m = report["machine"]
    lines = [f"# Detection latency at 640x480 and accuracy ({report['date']})", "",
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
    return "\n".join(lines + accuracy_markdown(report)) + "\n"


def main(argv=None) -> int:
    """Runs the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(prog="muon-ad bench detect", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/bench", help="folder for detect_bench.json and detect_bench.md")
    p.add_argument("--runs", type=int, default=40, help="timed frames per configuration")
    p.add_argument("--model", default="", help="a real YOLO .onnx to time instead of the synthetic network")
    p.add_argument("--accuracy-frames", type=int, default=0,
                   help="labelled frames to measure accuracy on (0 = all; -1 = skip accuracy)")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    images = frames()
    labelled = [] if a.accuracy_frames < 0 else accuracy.labelled_frames()
    if a.accuracy_frames > 0:
        labelled = labelled[:a.accuracy_frames]
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if model:
            note = f"YOLO rows: {os.path.abspath(model)}."
        else:
            model = os.path.join(tmp, "synthetic_yolov8n_640.onnx")
            gmacs = conv_yolo_model(model) / 1e9
            note = (f"YOLO rows: no real YOLO weights are installable here, so a synthetic random-weight "
                    f"YOLOv8-layout network ({gmacs:.2f} GMACs at 640x640; YOLOv8n: {YOLOV8N_GMACS}) stands in: "
                    "latency is representative, its boxes are not.")
        report = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["muon-ad bench detect", *(argv or [])]),
                  "machine": {**machine("cv2", "onnxruntime"), "onnxruntime_providers": ort_providers()},
                  "model_note": note, "results": []}
        print(json.dumps(report["machine"], indent=1))
        for label, cfg, case_note, with_accuracy in cases(model, not a.model):
            result = {"label": label, "note": case_note,
                      **measure(cfg, images, a.runs, labelled if with_accuracy else [])}
            report["results"].append(result)
            shown = (f"p50 {result['p50_ms']} / p90 {result['p90_ms']} / p99 {result['p99_ms']} ms  [{result['runs_as']}]"
                     if result["available"] else f"not available: {result['reason']}")
            if result.get("accuracy"):
                shown += f"  accuracy: {pr(result['accuracy']['all'])}"
            print(f"{label:34s} {shown}", flush=True)
    report["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    (out / "detect_bench.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "detect_bench.md").write_text(to_markdown(report))
    print(f"wrote {out / 'detect_bench.json'} and {out / 'detect_bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
