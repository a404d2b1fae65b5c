"""YOLO-family ONNX detector on onnxruntime: CUDA where the installed onnxruntime has it, CPU
otherwise (reported, never silent); FP32 or FP16; class count and layout read from the model."""
from __future__ import annotations

import numpy as np

from muon_ad_ros.detect.base import Box, Detector, DetectorConfig, ModelError, check_model_file
from muon_ad_ros.detect.boxes import letterbox, num_classes, postprocess, resolve_layout
from muon_ad_ros.detect.labels import class_names
from muon_ad_ros.runtime.onnx import fp16_model, session_options

DEFAULT_INPUT = 640  # for models exported with dynamic height/width and input_size 0


def input_hw(shape: list, input_size: int, model: str) -> tuple[int, int]:
    """Returns the (h, w) to feed a model input of `shape` (N, 3, H, W); raises ModelError naming the
    file when the shape is not an image input or contradicts input_size."""
    if len(shape) != 4:
        raise ModelError(f"model {model} input has shape {shape}; expected (1, 3, H, W)")
    n, c, h, w = (d if isinstance(d, int) and d > 0 else None for d in shape)
    if c not in (None, 3):
        raise ModelError(f"model {model} input has {c} channels; expected 3 (RGB)")
    if n not in (None, 1):
        raise ModelError(f"model {model} input has batch {n}; expected 1")
    if h and w:
        if input_size and (h, w) != (input_size, input_size):
            raise ModelError(f"model {model} has a fixed {w}x{h} input; input_size={input_size} "
                             "cannot apply (set input_size 0 or re-export)")
        return h, w
    size = input_size or DEFAULT_INPUT
    return h or size, w or size


class OnnxYoloDetector(Detector):
    """A YOLO ONNX model on onnxruntime."""

    name = "onnxruntime"

    def __init__(self, cfg: DetectorConfig):
        super().__init__(cfg.filters)
        import onnxruntime as ort

        self.model = check_model_file(cfg.model_path, (".onnx",))
        providers = ["CPUExecutionProvider"]
        if cfg.device in ("auto", "gpu"):
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif cfg.device == "gpu":
                self.fallback = "this onnxruntime has no CUDAExecutionProvider; running on CPU"
        opts = session_options(cfg.threads)
        source = self.model
        try:
            session = ort.InferenceSession(source, opts, providers=providers)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"model file {self.model} cannot be loaded by onnxruntime: {exc}") from exc
        in_type = session.get_inputs()[0].type
        if in_type not in ("tensor(float)", "tensor(float16)"):
            raise ModelError(f"model {self.model} input is {in_type}; expected float or float16")
        self.precision = "fp16" if in_type == "tensor(float16)" else "fp32"
        if cfg.precision == "fp32" and self.precision == "fp16":
            raise ModelError(f"model {self.model} has float16 inputs but precision fp32 was asked; "
                             "set precision fp16 or auto, or give an fp32 export")
        if cfg.precision == "fp16" and self.precision == "fp32":
            session = ort.InferenceSession(to_fp16(self.model), opts, providers=providers)
            self.precision = "fp16"
        if "CUDAExecutionProvider" in providers and session.get_providers()[0] != "CUDAExecutionProvider":
            self.fallback = "CUDAExecutionProvider failed to initialise; running on CPU"
        self.device = "GPU" if session.get_providers()[0] == "CUDAExecutionProvider" else "CPU"
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.size = input_hw(list(inp.shape), cfg.input_size, self.model)
        self.output_name = session.get_outputs()[0].name
        metadata = session.get_modelmeta().custom_metadata_map
        dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self._canvas = np.empty((*self.size, 3), np.uint8)
        self._blob = np.zeros((1, 3, *self.size), dtype)
        # One run at load: a model that cannot run, or whose output no layout fits, fails here
        # (naming the file) instead of on the first camera frame; the real shape also resolves
        # symbolic dimensions.
        try:
            out = session.run([self.output_name], {self.input_name: self._blob})[0]
        except Exception as exc:
            raise ModelError(f"model {self.model} fails on a {self.size[1]}x{self.size[0]} input: {exc}") from exc
        hint = {"true": True, "false": False}.get(metadata.get("end2end", "").lower())
        self.layout = resolve_layout(out.shape, cfg.output_layout, hint)
        count = num_classes(out.shape, self.layout)
        if out.shape[0] != 1 or (self.layout == "end2end" and out.shape[2] != 6) or \
                (self.layout != "end2end" and count < 1):
            raise ModelError(f"model {self.model} output shape {list(out.shape)} does not fit layout "
                             f"{self.layout} (set output_layout if auto guessed wrong)")
        self.class_names = class_names(count, metadata, cfg.labels_path, self.model)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Returns the detections in an HxWx3 uint8 RGB image."""
        filters = self.filters
        canvas, lb = letterbox(rgb, self.size, self._canvas)
        np.multiply(canvas.transpose(2, 0, 1), np.float32(1 / 255), out=self._blob[0], casting="unsafe")
        out = self.session.run([self.output_name], {self.input_name: self._blob})[0]
        return postprocess(out, self.layout, lb, filters, self.class_names)


def to_fp16(path: str) -> bytes:
    """Returns the serialized FP16 version of an FP32 ONNX model file."""
    import onnx
    try:
        onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise ModelError(f"model file {path} is not a valid ONNX protobuf: {exc}") from exc
    with open(path, "rb") as f:
        return fp16_model(f.read())
