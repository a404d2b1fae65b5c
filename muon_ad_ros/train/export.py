"""Model bundles (ONNX per retention level, FP16 variants, model.json, student.pt) and TensorRT engines.

METHOD.md section 6 (deployment). A bundle holds one ONNX per retention level so the runtime loads
them all at start and switches level without a reload pause. TensorRT engines of a bundle's levels
come from the package's one builder, runtime/tensorrt_engine.py (FP16/INT8, optional DLA core with GPU
fallback, cached under a key that includes the retention level); runtime.tensorrt_engine.engine_request maps a level onto it.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from muon_ad_ros.runtime import tensorrt_engine as te
from muon_ad_ros.runtime.tensorrt_engine import file_sha256
from muon_ad_ros.model.bundle import INPUT_NAME, OUTPUT_NAME, check_input_scale, check_retention, engine_size
from muon_ad_ros.model.student import FixedRetention, Student, StudentConfig
from muon_ad_ros.provenance import git_commit

FORMAT_VERSION = 1
LEVELS = (1.0, 0.7, 0.4)
OPSET = 17
MAX_ONNX_BYTES = 5 * 1024 * 1024


def level_tag(retention: float) -> str:
    """Return the file tag of a retention level: 1.0 -> 'r100', 0.4 -> 'r040'."""
    return f"r{round(check_retention(retention) * 100):03d}"


# -- ONNX ------------------------------------------------------------------------------------------
def export_onnx(student: Student, path: str | Path, retention: float = 1.0, sample_hw=(256, 256)) -> Path:
    """Write the student at one retention level as ONNX (opset 17, dynamic H and W); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    student.eval()
    x = torch.rand(1, 3, *sample_hw)
    with torch.no_grad(), warnings.catch_warnings():
        # shape checks and the retention's channel counts are Python values on purpose: baked into each level
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # the TorchScript exporter: the dynamo one needs onnxscript, which is not installed here
        torch.onnx.export(FixedRetention(student, retention), (x,), str(path), dynamo=False,
                          opset_version=OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {2: "height", 3: "width"},
                                        OUTPUT_NAME: {2: "height", 3: "width"}})
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size} bytes, over the {MAX_ONNX_BYTES}-byte bundle limit")
    return path


def convert_fp16(src: str | Path, dst: str | Path) -> Path:
    """Write an FP16 copy of an ONNX model with float32 I/O kept (ONNX Runtime runs it); return dst."""
    import onnx
    from onnxconverter_common import float16

    with warnings.catch_warnings():  # it warns for every weight below fp16's range: expected, not news
        warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)


def calibration_batch(images=None, max_side: int = 256) -> list[torch.Tensor]:
    """Return calibration frames as a list of (1,3,H,W) float tensors in [0,1] (sides multiples of 8).

    `images`: None (the bundled scikit-image evaluation photographs), a list of (H,W,3) uint8
    arrays or image paths, or a float tensor (N,3,H,W) in [0,1].
    """
    if isinstance(images, torch.Tensor):
        return [images[i:i + 1] for i in range(images.shape[0])]
    from . import data

    if images is None:
        images = data.content_images(split="eval")
    out = []
    for img in images:
        rgb = data.load_image(img) if isinstance(img, (str, Path)) else data.to_rgb(img)
        out.append(data.to_tensor(data.resize_max(rgb, max_side, 8)))
    if not out:
        raise ValueError("calibration_images is empty")
    return out


def measure_level(student: Student, retention: float) -> dict:
    """Return the pruning state of one level (model.json's level entry, before its files)."""
    counts = student.counts(retention)
    return {
        "retention": check_retention(retention),
        "retention_per_stage": student.retention_per_stage(retention),
        "context_groups": [counts[b.name] for b in student.context_blocks()],
        "flops_640x480": student.flops(480, 640, retention),
        "flops_fraction": student.flops(480, 640, retention) / student.flops(480, 640, 1.0),
    }


def onnx_max_error(path: Path, student: Student, x: torch.Tensor, retention: float) -> float:
    """Return max |ONNX Runtime output - torch output| on one frame."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {INPUT_NAME: x.numpy()})[0]
    with torch.no_grad():
        want = student(x, retention).numpy()
    return float(np.abs(got - want).max())


def export_bundle(student: Student, out_dir: str | Path, levels=LEVELS, calibration_images=None,
                  style_meta: dict | None = None, training_record: dict | None = None,
                  fp16: bool = False, input_scale: float = 1.0) -> Path:
    """Write a model bundle directory (ONNX per level, model.json, student.pt, style.png); return model.json.

    style_meta: {"name", "image" (bundled style name, path or (H,W,3) uint8 array), "licence", "source"}.
    training_record: {"command", "seed", "git_commit", "loss_summary", ...} as written by distill.
    input_scale: the factor the deployment resizes frames by before the network (model/bundle.py input_scale).
    """
    input_scale = check_input_scale(input_scale)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    levels = sorted({check_retention(r) for r in levels}, reverse=True)
    style_meta = dict(style_meta or {})
    student = student.cpu().eval()
    batch = calibration_batch(calibration_images)
    level_info = []
    for r in levels:
        info = measure_level(student, r)
        onnx_path = export_onnx(student, out / f"student_{level_tag(r)}.onnx", r)
        info.update(onnx=onnx_path.name, onnx_bytes=onnx_path.stat().st_size, sha256=file_sha256(onnx_path),
                    max_abs_error_vs_torch=onnx_max_error(onnx_path, student, batch[0], r))
        if fp16:
            p16 = convert_fp16(onnx_path, out / f"student_{level_tag(r)}_fp16.onnx")
            info.update(onnx_fp16=p16.name, sha256_fp16=file_sha256(p16))
        level_info.append(info)
    torch.save(student.state_dict(), out / "student.pt")
    style = {"name": style_meta.get("name", out.name), "licence": style_meta.get("licence"),
             "source": style_meta.get("source")}
    image = style_meta.get("image")
    if image is not None:
        from . import data
        if isinstance(image, (str, Path)):  # a bundled style name or an image file
            image, source, licence = data.style_image(image)
            style["source"], style["licence"] = style["source"] or source, style["licence"] or licence
        data.save_image(out / "style.png", image)
        style["image"] = "style.png"
    meta = {
        "format_version": FORMAT_VERSION,
        "style": style,
        "input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
                  "channels": "RGB", "height_multiple": 8, "width_multiple": 8, "min_side": 64,
                  "scale": input_scale},
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0]},
        "student_config": dataclasses.asdict(student.config),
        "weights": "student.pt",
        "levels": level_info,
        "calibration": {"images": len(batch), "shapes": [list(x.shape[2:]) for x in batch]},
        "training": training_record or {},
        "export": {"opset": OPSET, "torch": torch.__version__, "git_commit": git_commit(),
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
    }
    path = out / "model.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_checkpoint(path: str | Path) -> tuple[Student, dict, dict]:
    """Return (student, training record, style meta) from student.pt or a distill checkpoint.

    A distill checkpoint is {'student': state_dict, 'config': StudentConfig as dict, 'record': {...},
    'style': {...}}; a bare state_dict (student.pt) takes its config from the model.json beside it (the
    bundle's student_config), else StudentConfig.from_saved's defaults for configs without a field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    record, style, config = {}, {}, {}
    if isinstance(state, dict) and "student" in state:
        record, style, config = state.get("record", {}), state.get("style", {}), state.get("config", {})
        state = state["student"]
    elif (path.parent / "model.json").is_file():  # a bundle's student.pt: its config and style beside it
        meta = json.loads((path.parent / "model.json").read_text())
        config, style = meta.get("student_config", {}), meta.get("style", {})
    student = Student(StudentConfig.from_saved(config, state))
    student.load_state_dict(state)
    return student.eval(), dict(record), {k: v for k, v in dict(style).items() if isinstance(v, str)}


def input_scale_arg(text: str) -> float:
    """argparse type of --input-scale (distill, export, eval): a number in [MIN_SCALE, 1.0]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    try:
        return check_input_scale(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- TensorRT ---------------------------------------------------------------------------------------
def _hw(text: str) -> tuple[int, int]:
    """Return (H, W) from an 'HxW' argument."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 480x640, got {text!r}") from None
    return h, w


# -- command -----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    """`muon-ad export`: write a model bundle from a checkpoint (and TensorRT engines); return the status."""
    p = argparse.ArgumentParser(prog="muon-ad export", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="student.pt or a distill checkpoint")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--levels", type=float, nargs="+", default=list(LEVELS), help="retention levels")
    p.add_argument("--fp16", action="store_true", help="also write FP16 ONNX variants")
    p.add_argument("--style-image", help="style image to copy into the bundle as style.png")
    p.add_argument("--style-name", help="style name (default: the output directory's name)")
    p.add_argument("--licence", help="licence of the style image")
    p.add_argument("--calibration", help="folder of calibration images (default: bundled photographs)")
    p.add_argument("--padding", choices=("zeros", "replicate"),
                   help="run the same weights with this padding of the 3x3 convolutions (default: as trained)")
    p.add_argument("--trt", choices=("fp16", "int8"), help="also build TensorRT engines at this precision")
    p.add_argument("--dla-core", type=int, help="build for this DLA core (with GPU fallback)")
    p.add_argument("--input-scale", type=input_scale_arg, default=1.0,
                   help="frames are resized by this factor before the network (larger strokes, less compute; "
                        "recorded in model.json, default 1.0)")
    p.add_argument("--trt-shape", type=_hw, default=(480, 640),
                   help="camera frame HxW the engines serve, e.g. 480x640 (their input: that at the input scale)")
    p.add_argument("--engine-cache", help="engine cache folder (default ~/.cache/muon_ad_ros/engines)")
    a = p.parse_args(argv)
    student, record, style = load_checkpoint(a.checkpoint)
    if a.padding and a.padding != student.config.padding:
        # the padding holds no weights: the same state_dict runs in a student padded the other way
        state = student.state_dict()
        student = Student(dataclasses.replace(student.config, padding=a.padding))
        student.load_state_dict(state)
        student.eval()
    beside = Path(a.checkpoint).parent / "training.json"  # distill writes its record next to the checkpoint
    if not record and beside.is_file():
        record = {k: v for k, v in json.loads(beside.read_text()).items() if k != "log"}
    for key, value in (("image", a.style_image), ("name", a.style_name), ("licence", a.licence)):
        if value:
            style[key] = value
    calib = None
    if a.calibration:
        from . import data
        calib = data.content_images(a.calibration)
    meta_path = export_bundle(student, a.out, a.levels, calib, style, record, fp16=a.fp16, input_scale=a.input_scale)
    meta = json.loads(meta_path.read_text())
    for lv in meta["levels"]:
        print(f"r={lv['retention']:.2f} {lv['onnx']} {lv['onnx_bytes'] / 1e6:.2f} MB "
              f"flops x{lv['flops_fraction']:.2f} context groups {lv['context_groups']}")
    if a.trt:
        for lv in meta["levels"]:
            shape = engine_size(*a.trt_shape, a.input_scale)   # as the style node builds them
            req = te.engine_request(Path(a.out) / lv["onnx"], a.trt, shape, lv["retention"], a.dla_core,
                                    a.calibration, a.engine_cache)
            try:
                _, report = te.build_or_load(req)
            except te.TensorRTUnavailable as exc:
                print(f"TensorRT engines skipped: {exc}")
                break
            print(f"engine {report.path} ({'built' if report.built else 'cached'}): {len(report.dla_layers)} "
                  f"layers on the DLA, fell back to the GPU: {report.gpu_fallback_layers}")
    print(f"wrote {meta_path}")
    return 0
