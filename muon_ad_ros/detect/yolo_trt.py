"""ONNX detector (the bundled SSD MobileNet-v2 COCO when model_path is empty, or a YOLO-family export) on
TensorRT (GPU, or DLA with GPU fallback) for Jetson. The engine comes from runtime/tensorrt_engine.py
(cached; rebuilt only when the model, TensorRT, GPU, DLA core, precision or input shape changed);
pre- and post-processing are shared with the onnxruntime backend (boxes.ModelIO)."""
from __future__ import annotations

import numpy as np

from muon_ad_ros.detect.base import Box, Detector, DetectorConfig, ModelError
from muon_ad_ros.detect.boxes import ModelIO, resolve_outputs
from muon_ad_ros.detect.labels import class_names
from muon_ad_ros.detect.yolo_ort import end2end_hint, input_hw, model_file
from muon_ad_ros.runtime import tensorrt_engine as te


def onnx_io(path: str) -> tuple[str, list, dict[str, str], int]:
    """Returns (input name, input shape with symbolic dims as None, metadata, output count) of an ONNX
    file, without loading its weights."""
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise ModelError(f"model file {path} is not a valid ONNX protobuf: {exc}") from exc
    if not model.graph.input:
        raise ModelError(f"model file {path} has no graph input")
    inp = model.graph.input[0]
    shape = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    return inp.name, shape, {p.key: p.value for p in model.metadata_props}, len(model.graph.output)


def letterboxed(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Returns a (1, 3, H, W) float32 calibration batch preprocessed exactly like a YOLO model's frames
    (letterbox, RGB, /255)."""
    io = ModelIO("yolov8", size, np.float32, ())
    io.fill(rgb)
    return io.blob


def ssd_resized(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Returns a (1, 3, H, W) float32 calibration batch preprocessed exactly like an ssd model's frames
    (resized, RGB, 0..255)."""
    io = ModelIO("ssd", size, np.float32, ())
    io.fill(rgb)
    return io.blob


class TrtYoloDetector(Detector):
    """An ONNX detector as a TensorRT engine; built from ONNX (cached) or loaded from a prebuilt plan."""

    name = "tensorrt"

    def __init__(self, cfg: DetectorConfig, log=print):
        super().__init__(cfg.filters)
        self.model = model_file(cfg.model_path, (".onnx", ".engine", ".plan"))
        self.precision = "fp16" if cfg.precision == "auto" else cfg.precision
        prebuilt = not self.model.lower().endswith(".onnx")
        metadata: dict[str, str] = {}
        try:
            if prebuilt:
                engine = te.load_plan(self.model, cfg.dla_core)
                self.device = f"DLA{cfg.dla_core}" if cfg.dla_core >= 0 else "GPU"
                self.report = None
            else:
                name, shape, metadata, n_outputs = onnx_io(self.model)
                size = input_hw(shape, cfg.input_size, self.model)
                calibration, calibration_id = None, ""
                if self.precision == "int8":
                    prepare = ssd_resized if n_outputs == 2 else letterboxed
                    calibration, calibration_id = te.calibration_source(cfg.calibration_dir, size, prepare)
                req = te.EngineRequest(self.model, self.precision, cfg.dla_core, {name: (1, 3, *size)},
                                       cfg.engine_cache_dir, calibration=calibration, calibration_id=calibration_id)
                engine, self.report = te.build_or_load(req, log)
                self.device = f"DLA{cfg.dla_core}" if cfg.dla_core >= 0 else "GPU"
                self.fallback_layers = tuple(self.report.gpu_fallback_layers)
                if self.fallback_layers:
                    self.fallback = f"{len(self.fallback_layers)} layers fell back from the DLA to the GPU"
            size = cfg.input_size or 640   # only used when a prebuilt plan has dynamic height/width
            self.runner = te.EngineRunner(engine, default_shape=(1, 3, size, size))
        except (ValueError, OSError) as exc:
            raise ModelError(f"model {self.model}: {exc}") from exc
        self.input_name = self.runner.inputs[0]
        outputs = list(self.runner.outputs)
        self.output_names = outputs[:2] if len(outputs) == 2 else outputs[:1]
        in_shape = self.runner.shape(self.input_name)
        self.size = (int(in_shape[2]), int(in_shape[3]))
        self.layout, count = resolve_outputs([tuple(self.runner.shape(o)) for o in self.output_names],
                                             cfg.output_layout, end2end_hint(metadata))
        self.class_names = class_names(count, metadata, cfg.labels_path, self.model)
        self.io = ModelIO(self.layout, self.size, np.float32, self.class_names)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Returns the detections in an HxWx3 uint8 RGB image."""
        filters = self.filters
        mapping = self.io.fill(rgb)
        out = self.runner.run({self.input_name: self.io.blob})
        return self.io.finish([out[name] for name in self.output_names], mapping, filters)
