"""ONNX detector on onnxruntime: the bundled SSD MobileNet-v2 COCO (model_path empty) or a YOLO-family
export; CUDA where the installed onnxruntime has it, CPU otherwise (reported, never silent); FP32 or
FP16; class count and layout read from the model."""
from __future__ import annotations

import numpy as np

from muon_ad_ros.detect.base import Box, Detector, DetectorConfig, ModelError, check_model_file
from muon_ad_ros.detect.boxes import ModelIO, resolve_outputs
from muon_ad_ros.detect.coco import SSD_ONNX, SSD_ONNX_INT8
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


def model_file(path: str, suffixes: tuple[str, ...], bundled=SSD_ONNX) -> str:
    """Returns the checked model file: `path`, or the bundled COCO SSD file `bundled` when it is empty."""
    if not path and not bundled.is_file():
        raise ModelError(f"the bundled COCO SSD {bundled} is missing (reinstall muon_ad_ros, or give model_path)")
    return check_model_file(path or str(bundled), suffixes)


def end2end_hint(metadata: dict[str, str]) -> bool | None:
    """Returns what an exporter's `end2end` metadata says (None: nothing)."""
    return {"true": True, "false": False}.get(metadata.get("end2end", "").lower())


class OnnxYoloDetector(Detector):
    """An ONNX detector (the bundled SSD or a YOLO export) on onnxruntime."""

    name = "onnxruntime"

    def __init__(self, cfg: DetectorConfig):
        super().__init__(cfg.filters)
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if cfg.device in ("auto", "gpu"):
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            elif cfg.device == "gpu":
                self.fallback = "this onnxruntime has no CUDAExecutionProvider; running on CPU"
        # The bundled SSD runs quantized on the CPU unless a float precision is asked for (int8 QDQ: 2.5x
        # faster on one thread); CUDA takes the float model.
        if cfg.precision == "int8" and cfg.model_path:
            raise ModelError(f"onnxruntime runs int8 only as the bundled SSD's quantized file; {cfg.model_path} "
                             "cannot be quantized here (give a quantized model with precision auto, or use tensorrt)")
        cpu = providers == ["CPUExecutionProvider"]
        int8 = not cfg.model_path and (cfg.precision == "int8" or (cfg.precision == "auto" and cpu))
        self.model = model_file(cfg.model_path, (".onnx",), SSD_ONNX_INT8 if int8 else SSD_ONNX)
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
        if int8:
            self.precision = "int8"   # float input and output, int8 convolutions
        if "CUDAExecutionProvider" in providers and session.get_providers()[0] != "CUDAExecutionProvider":
            self.fallback = "CUDAExecutionProvider failed to initialise; running on CPU"
        self.device = "GPU" if session.get_providers()[0] == "CUDAExecutionProvider" else "CPU"
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.size = input_hw(list(inp.shape), cfg.input_size, self.model)
        outputs = session.get_outputs()
        # An ssd model's two outputs (boxes, scores) are both read; a YOLO model's first output only.
        self.output_names = [o.name for o in outputs[:2]] if len(outputs) == 2 else [outputs[0].name]
        metadata = session.get_modelmeta().custom_metadata_map
        dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        blob = np.zeros((1, 3, *self.size), dtype)
        # One run at load: a model that cannot run, or whose output no layout fits, fails here
        # (naming the file) instead of on the first camera frame; the real shape also resolves
        # symbolic dimensions.
        try:
            outs = session.run(self.output_names, {self.input_name: blob})
        except Exception as exc:
            raise ModelError(f"model {self.model} fails on a {self.size[1]}x{self.size[0]} input: {exc}") from exc
        self.layout, count = resolve_outputs([o.shape for o in outs], cfg.output_layout, end2end_hint(metadata))
        out = outs[0]
        if out.shape[0] != 1 or (self.layout == "end2end" and out.shape[2] != 6) or \
                (self.layout != "end2end" and count < 1):
            raise ModelError(f"model {self.model} output shape {list(out.shape)} does not fit layout "
                             f"{self.layout} (set output_layout if auto guessed wrong)")
        self.class_names = class_names(count, metadata, cfg.labels_path, self.model)
        self.io = ModelIO(self.layout, self.size, dtype, self.class_names)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Returns the detections in an HxWx3 uint8 RGB image."""
        filters = self.filters
        mapping = self.io.fill(rgb)
        outs = self.session.run(self.output_names, {self.input_name: self.io.blob})
        return self.io.finish(outs, mapping, filters)


def to_fp16(path: str) -> bytes:
    """Returns the serialized FP16 version of an FP32 ONNX model file."""
    import onnx
    try:
        onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise ModelError(f"model file {path} is not a valid ONNX protobuf: {exc}") from exc
    with open(path, "rb") as f:
        return fp16_model(f.read())
