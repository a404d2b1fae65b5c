"""`muon-ad gpu-check` (`make gpu-check`): every GPU path of the package once, on a machine with an NVIDIA
GPU and no network, in a few minutes.

Parts: the style student through torch on CUDA (against the CPU output), through TensorRT FP16 and INT8
(calibrated on the bundled photographs), detection through TensorRT, the style student through ONNX
Runtime's CUDA provider, and `muon-ad distill --device cuda` (plus the first steps against the CPU). Each
part runs when what it needs is importable and is skipped with the reason otherwise; one JSON records
latencies, engine build times, where the layers ran and the first error of each part. The exit status is
0 when every part that could run passed.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parents[1]
FRAME_HW = (480, 640)
RUNS = 50
DISTILL_STEPS = 300


class Skip(Exception):
    """A part that cannot run here; the message says why."""


def _p(values_ms) -> dict:
    v = np.asarray(values_ms, float)
    return {"p50_ms": round(float(np.percentile(v, 50)), 3), "p90_ms": round(float(np.percentile(v, 90)), 3),
            "runs": int(v.size)}


def _time(fn, runs: int = RUNS, sync=None, warmup: int = 5) -> dict:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append((time.perf_counter() - t0) * 1e3)
    return _p(out)


def _torch_cuda():
    """Returns torch with a CUDA device; raises Skip naming what is missing."""
    if importlib.util.find_spec("torch") is None:
        raise Skip("torch is not installed")
    import torch
    if not torch.cuda.is_available():
        raise Skip(f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none, CPU-only'}) "
                   "sees no CUDA GPU")
    return torch


def _tensorrt():
    """Returns (tensorrt, torch) with a CUDA device; raises Skip naming everything missing."""
    reasons, trt, torch = [], None, None
    try:
        import tensorrt as trt
    except Exception as exc:   # ImportError, or an OSError from a missing libnvinfer
        reasons.append(f"tensorrt is not importable ({exc})")
    try:
        torch = _torch_cuda()
    except Skip as exc:
        reasons.append(str(exc))
    if reasons:
        raise Skip("; ".join(reasons))
    return trt, torch


def _frame(seed: int = 0) -> np.ndarray:
    import cv2
    photos = sorted(glob.glob(str(PACKAGE / "data" / "*.jpg")))
    if photos:
        bgr = cv2.resize(cv2.imread(photos[seed % len(photos)]), FRAME_HW[::-1], interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.random.default_rng(seed).integers(0, 255, (*FRAME_HW, 3), np.uint8)


def calibration_folder(out: Path) -> Path:
    """Returns a folder of the bundled photographs (the INT8 calibration set)."""
    folder = out / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted(glob.glob(str(PACKAGE / "data" / "*.jpg"))):
        shutil.copy(f, folder / os.path.basename(f))
    return folder


def environment() -> dict:
    env = {"python": platform.python_version(), "machine": platform.machine()}
    for name in ("torch", "tensorrt", "onnxruntime"):
        if importlib.util.find_spec(name) is None:
            env[name] = None
            continue
        try:
            env[name] = __import__(name).__version__
        except Exception as exc:
            env[name] = f"not importable: {exc}"
    if env.get("torch"):
        import torch
        env["torch_cuda_build"] = torch.version.cuda
        env["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name()
            env["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    if env.get("onnxruntime") and not str(env["onnxruntime"]).startswith("not"):
        import onnxruntime
        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    return env


# --------------------------------------------------------------------------------------------------- parts

def style_torch_cuda(ctx) -> dict:
    torch = _torch_cuda()
    from muon_ad_ros.train.export import load_checkpoint
    student, _, _ = load_checkpoint(ctx["model_dir"] / "student.pt")
    x = torch.from_numpy(_frame().transpose(2, 0, 1)[None] / np.float32(255)).float()
    out = {"model": str(ctx["model_dir"]), "input_hw": list(FRAME_HW), "levels": {}}
    with torch.inference_mode():
        cpu = {r: student(x, r) for r in (1.0, 0.4)}
        gpu = student.cuda()
        xg = x.cuda()
        for r in (1.0, 0.4):
            diff = float((gpu(xg, r).cpu() - cpu[r]).abs().max())
            lat = _time(lambda: gpu(xg, r), sync=torch.cuda.synchronize)
            out["levels"][str(r)] = lat | {"max_abs_diff_vs_cpu": diff}
            if diff > 1e-2:
                raise AssertionError(f"retention {r}: CUDA output differs from the CPU by {diff:.4f} (> 0.01)")
    return out


def _style_tensorrt(ctx, precision: str) -> dict:
    _tensorrt()
    from muon_ad_ros.runtime.style import open_style_backend
    options = {"input_hw": FRAME_HW, "cache_dir": str(ctx["out"] / "engines")}
    if precision == "int8":
        options["calibration_dir"] = str(ctx["calibration"])
    t0 = time.perf_counter()
    backend = open_style_backend("tensorrt", ctx["model_dir"], precision=precision, **options)
    opened = time.perf_counter() - t0
    ref = open_style_backend("onnxruntime", ctx["model_dir"])
    frame = _frame(1)
    out = {"open_seconds": round(opened, 1), "levels": {}}
    for level, report in backend.reports.items():
        y = backend.infer(frame, level).astype(int)
        diff = np.abs(y - ref.infer(frame, level).astype(int))
        out["levels"][str(level)] = _time(lambda: backend.infer(frame, level)) | {
            "build_seconds": report.build_seconds, "built": report.built, "device": report.device,
            "tensorrt": report.tensorrt_version, "engine_layers": len(report.engine_layers),
            "layers": report.engine_layers[:200], "dla_layers": report.dla_layers,
            "gpu_fallback_layers": report.gpu_fallback_layers,
            "mean_abs_diff_vs_onnxruntime_cpu": round(float(diff.mean()), 3)}
        limit = 12 if precision == "int8" else 4   # 8-bit levels; INT8 quantizes every activation
        if diff.mean() > limit:
            raise AssertionError(f"retention {level}: mean difference to ONNX Runtime {diff.mean():.1f} > {limit}")
    # a frame of another size and aspect runs resized to the engines' frame size, as ONNX Runtime does it
    import cv2
    other = cv2.resize(frame, (800, 450), interpolation=cv2.INTER_AREA)
    ref.frame_hw = backend.frame_hw
    y = backend.infer(other, 1.0)
    diff = np.abs(y.astype(int) - ref.infer(other, 1.0).astype(int)).mean()
    out["frame_800x450"] = {"output_hw": list(y.shape[:2]), "mean_abs_diff_vs_onnxruntime_cpu": round(float(diff), 3)}
    if y.shape != other.shape or diff > limit:
        raise AssertionError(f"an 800x450 frame: output {y.shape}, mean difference to ONNX Runtime {diff:.1f}")
    backend.close()
    return out


def style_tensorrt_fp16(ctx) -> dict:
    return _style_tensorrt(ctx, "fp16")


def style_tensorrt_int8(ctx) -> dict:
    return _style_tensorrt(ctx, "int8")


def detect_tensorrt(ctx) -> dict:
    _tensorrt()
    from muon_ad_ros.detect import DetectorConfig, make_detector
    from muon_ad_ros.detect.synthetic import conv_yolo_model
    model = str(ctx["out"] / "yolo_synthetic_640.onnx")
    conv_yolo_model(model, size=640, classes=80)
    out = {"model": "synthetic YOLOv8-layout conv net, 640x640 (no real weights are bundled)", "precisions": {}}
    frame = _frame(2)
    ort = make_detector(DetectorConfig(backend="onnxruntime", model_path=model))
    for precision in ("fp16", "int8"):
        cfg = DetectorConfig(backend="tensorrt", model_path=model, precision=precision,
                             engine_cache_dir=str(ctx["out"] / "engines"),
                             calibration_dir=str(ctx["calibration"]) if precision == "int8" else "")
        det = make_detector(cfg, log=lambda m: None)
        if det.name != "tensorrt":
            raise AssertionError(f"{precision}: fell back to {det.name}: {det.fallback}")
        boxes = det.detect(frame)
        out["precisions"][precision] = _time(lambda: det.detect(frame)) | {
            "build_seconds": det.report.build_seconds, "device": det.report.device,
            "tensorrt": det.report.tensorrt_version, "engine_layers": len(det.report.engine_layers),
            "layers": det.report.engine_layers[:200], "gpu_fallback_layers": det.report.gpu_fallback_layers,
            "boxes": len(boxes), "boxes_onnxruntime_cpu": len(ort.detect(frame))}
    return out


def detect_tensorrt_coco_ssd(ctx) -> dict:
    """The default detector, the bundled SSD MobileNet-v2 COCO, as fp16 and int8 engines: its boxes against
    onnxruntime's on the CPU."""
    _tensorrt()
    from muon_ad_ros.detect import DetectorConfig, make_detector
    frame = _frame(2)
    reference = make_detector(DetectorConfig(backend="onnxruntime", device="cpu", precision="fp32")).detect(frame)
    out = {"model": "bundled SSD MobileNet-v2 COCO (models/coco_ssd)", "onnxruntime_cpu_boxes": len(reference),
           "precisions": {}}
    for precision in ("fp16", "int8"):
        det = make_detector(DetectorConfig(backend="tensorrt", precision=precision,
                                           engine_cache_dir=str(ctx["out"] / "engines"),
                                           calibration_dir=str(ctx["calibration"]) if precision == "int8" else ""),
                            log=lambda m: None)
        if det.name != "tensorrt":
            raise AssertionError(f"{precision}: fell back to {det.name}: {det.fallback}")
        boxes = det.detect(frame)
        same = [a.class_name for a in boxes] == [b.class_name for b in reference]
        out["precisions"][precision] = _time(lambda: det.detect(frame)) | {
            "build_seconds": det.report.build_seconds, "device": det.report.device,
            "boxes": len(boxes), "classes_as_onnxruntime": same,
            "max_corner_difference_px": max((max(abs(a.x_min - b.x_min), abs(a.y_min - b.y_min), abs(a.x_max - b.x_max),
                                                 abs(a.y_max - b.y_max)) for a, b in zip(boxes, reference)),
                                            default=0.0)}
        if precision == "fp16" and not same:
            raise AssertionError(f"fp16 engine found {[a.class_name for a in boxes]}, onnxruntime "
                                 f"{[b.class_name for b in reference]}")
    return out


def onnxruntime_cuda(ctx) -> dict:
    _torch_cuda()
    if importlib.util.find_spec("onnxruntime") is None:
        raise Skip("onnxruntime is not installed")
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise Skip(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                   f"(providers: {', '.join(ort.get_available_providers())}); onnxruntime-gpu provides it")
    path = str(ctx["model_dir"] / "student_r100.onnx")
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(ctx["out"] / "ort_profile")
    sess = ort.InferenceSession(path, opts, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    cpu = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = (_frame(3).transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)
    diff = float(np.abs(sess.run(None, {name: x})[0] - cpu.run(None, {name: x})[0]).max())
    out = _time(lambda: sess.run(None, {name: x})) | {"providers": sess.get_providers(), "max_abs_diff_vs_cpu": diff}
    nodes: dict[str, int] = {}
    for event in json.loads(Path(sess.end_profiling()).read_text()):
        provider = event.get("args", {}).get("provider")
        if event.get("cat") == "Node" and provider and event.get("name", "").endswith("_kernel_time"):
            nodes[provider] = nodes.get(provider, 0) + 1
    out["kernel_runs_per_provider"] = nodes
    if "CUDAExecutionProvider" not in out["providers"]:
        raise AssertionError(f"the session fell back to {out['providers']}")
    if diff > 1e-2:
        raise AssertionError(f"CUDA output differs from the CPU by {diff:.4f} (> 0.01)")
    return out


def distill_cuda(ctx) -> dict:
    _torch_cuda()
    from muon_ad_ros.train import data, distill
    cfg = distill.TrainConfig(**distill.FAST | {"iters": 3})
    logs = {}
    for device in ("cpu", "cuda"):
        trainer = distill.Distiller(cfg, data.style_image("mosaic")[0], data.content_images(), device)
        logs[device] = [trainer.train_step()["loss"] for _ in range(cfg.iters)]
    rel = max(abs(a - b) / max(abs(a), 1e-8) for a, b in zip(logs["cpu"], logs["cuda"]))
    out_dir = ctx["out"] / "distill"
    t0 = time.perf_counter()
    status = distill.main(["--style", "mosaic", "--iters", str(ctx["distill_steps"]), "--device", "cuda",
                           "--out", str(out_dir)])
    seconds = time.perf_counter() - t0
    record = json.loads((out_dir / "training.json").read_text())
    out = {"steps": ctx["distill_steps"], "seconds": round(seconds, 1), "gpu": record.get("gpu"),
           "first_steps_loss_cpu": logs["cpu"], "first_steps_loss_cuda": logs["cuda"],
           "first_steps_max_rel_diff": rel, "loss_summary": record.get("loss_summary"), "bundle": str(out_dir)}
    if status != 0:
        raise AssertionError(f"muon-ad distill exited {status}")
    if rel > 1e-2:
        raise AssertionError(f"the first CUDA steps differ from the CPU ones by {rel:.4f} (relative, > 0.01)")
    return out


PARTS = {"style_torch_cuda": style_torch_cuda, "style_tensorrt_fp16": style_tensorrt_fp16,
         "style_tensorrt_int8": style_tensorrt_int8, "detect_tensorrt": detect_tensorrt,
         "detect_tensorrt_coco_ssd": detect_tensorrt_coco_ssd,
         "onnxruntime_cuda": onnxruntime_cuda, "distill_cuda": distill_cuda}


def run(out: Path, parts=None, distill_steps: int = DISTILL_STEPS, model_dir=None, log=print) -> dict:
    """Runs the parts and returns the report (also written to out/gpu_check.json)."""
    from muon_ad_ros.model.bundle import default_model_dir
    out.mkdir(parents=True, exist_ok=True)
    ctx = {"out": out, "model_dir": Path(model_dir) if model_dir else default_model_dir(),
           "calibration": calibration_folder(out), "distill_steps": distill_steps}
    report = {"environment": environment(), "parts": {}}
    t_all = time.perf_counter()
    for name in parts or PARTS:
        t0 = time.perf_counter()
        entry: dict = {}
        try:
            entry = {"status": "passed", "result": PARTS[name](ctx)}
        except Skip as exc:
            entry = {"status": "skipped", "reason": str(exc)}
        except Exception as exc:   # the first error of the part, with where it came from
            entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc(limit=-6)}
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        report["parts"][name] = entry
        log(f"{name:<22} {entry['status']:<8} {entry['seconds']:>6.1f} s  "
            f"{entry.get('reason') or entry.get('error') or ''}")
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    report["ok"] = all(p["status"] != "failed" for p in report["parts"].values())
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


def main(argv=None) -> int:
    """`muon-ad gpu-check [--out DIR]`; returns 0 when every part that could run passed."""
    p = argparse.ArgumentParser(prog="muon-ad gpu-check", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path("out") / "gpu_check"))
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--distill-steps", type=int, default=DISTILL_STEPS)
    p.add_argument("--model", help="style bundle (default: the shipped default)")
    a = p.parse_args(argv)
    parts = [x for x in a.parts.split(",") if x]
    unknown = [x for x in parts if x not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {unknown}; parts: {', '.join(PARTS)}")
    report = run(Path(a.out), parts, a.distill_steps, a.model)
    print(f"{'passed' if report['ok'] else 'FAILED'} in {report['seconds']} s -> {Path(a.out) / 'gpu_check.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
