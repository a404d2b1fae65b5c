"""YOLO-family detector on TensorRT (GPU, or DLA with GPU fallback) for Jetson. The engine comes from
runtime/tensorrt_engine.py (cached; rebuilt only when the model, TensorRT, GPU, DLA core, precision
or input shape changed); decoding is shared with the onnxruntime backend (boxes.py)."""
from __future__ import annotations

import numpy as np

from muon_ad_ros.detect.base import Box, Detector, DetectorConfig, ModelError, check_model_file
from muon_ad_ros.detect.boxes import letterbox, num_classes, postprocess, resolve_layout
from muon_ad_ros.detect.labels import class_names
from muon_ad_ros.detect.yolo_ort import input_hw
from muon_ad_ros.runtime import tensorrt_engine as te


def onnx_io(path: str) -> tuple[str, list, dict[str, str]]:
    """Returns (input name, input shape with symbolic dims as None, metadata) of an ONNX file,
    without loading its weights."""
    import onnx

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise ModelError(f"model file {path} is not a valid ONNX protobuf: {exc}") from exc
    if not model.graph.input:
        raise ModelError(f"model file {path} has no graph input")
    inp = model.graph.input[0]
    shape = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    return inp.name, shape, {p.key: p.value for p in model.metadata_props}


def letterboxed(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Returns a (1, 3, H, W) float32 calibration batch preprocessed exactly like inference
    (letterbox, RGB, /255)."""
    canvas, _ = letterbox(rgb, size)
    return (canvas.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)


class TrtYoloDetector(Detector):
    """A YOLO model as a TensorRT engine; built from ONNX (cached) or loaded from a prebuilt plan."""

    name = "tensorrt"

    def __init__(self, cfg: DetectorConfig, log=print):
        super().__init__(cfg.filters)
        self.model = check_model_file(cfg.model_path, (".onnx", ".engine", ".plan"))
        self.precision = "fp16" if cfg.precision == "auto" else cfg.precision
        prebuilt = not self.model.lower().endswith(".onnx")
        metadata: dict[str, str] = {}
        try:
            if prebuilt:
                engine = te.load_plan(self.model, cfg.dla_core)
                self.device = f"DLA{cfg.dla_core}" if cfg.dla_core >= 0 else "GPU"
                self.report = None
            else:
                name, shape, metadata = onnx_io(self.model)
                size = input_hw(shape, cfg.input_size, self.model)
                calibration, calibration_id = None, ""
                if self.precision == "int8":
                    calibration, calibration_id = te.calibration_source(cfg.calibration_dir, size, letterboxed)
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
        self.input_name, self.output_name = self.runner.inputs[0], self.runner.outputs[0]
        in_shape, out_shape = self.runner.shape(self.input_name), self.runner.shape(self.output_name)
        self.size = (int(in_shape[2]), int(in_shape[3]))
        self.layout = resolve_layout(out_shape, cfg.output_layout,
                                     {"true": True, "false": False}.get(metadata.get("end2end", "").lower()))
        self.class_names = class_names(num_classes(out_shape, self.layout), metadata, cfg.labels_path, self.model)
        self._canvas = np.empty((*self.size, 3), np.uint8)
        self._blob = np.empty((1, 3, *self.size), np.float32)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Returns the detections in an HxWx3 uint8 RGB image."""
        filters = self.filters
        canvas, lb = letterbox(rgb, self.size, self._canvas)
        np.multiply(canvas.transpose(2, 0, 1), np.float32(1 / 255), out=self._blob[0], casting="unsafe")
        out = self.runner.run({self.input_name: self._blob})[self.output_name]
        return postprocess(out, self.layout, lb, filters, self.class_names)
