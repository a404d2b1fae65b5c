"""The package's one TensorRT engine builder: ONNX -> cached plan, shared by every TensorRT backend
(detection, the style runtime and `muon-ad export`). docs/method.md section 6 (deployment). Written against
the name-based tensor API of TensorRT 8.6-11.x; the differences between releases are detected from the
module (`build_settings`): 11.x has no precision flags and no INT8 calibrator, so its FP16 engines come
from an FP16-cast ONNX model and its INT8 engines from Q/DQ pairs scaled on the calibration images.
`make check-tensorrt` checks every TensorRT name used here against real releases (docs/tensorrt.md).
tensorrt, torch (CUDA buffers), OpenCV (calibration images) and onnxruntime (ONNX rewrites) are imported
only when an engine is built or run.

Cache: one `<model stem>-<key>.engine` (+ `.json` report) per key = sha256 of the ONNX bytes, the
TensorRT and CUDA versions, the GPU name and compute capability, the DLA core, the precision, the
input shapes, the calibration set and (style models) the retention level. Same key -> the plan is
deserialized, no rebuild; anything changed -> a new key and a new build. The report says which layers run
on the DLA and which fell back to the GPU, and a precision the build cannot honour is an error, not ignored.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

if TYPE_CHECKING:   # annotations only: they tell muon_ad_ros/bench/tensorrt_api.py the TensorRT types
    import tensorrt

DEFAULT_CACHE = os.path.join("~", ".cache", "muon_ad_ros", "engines")
PRECISIONS = ("fp32", "fp16", "int8")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MAX_CALIBRATION_IMAGES = 500


class TensorRTUnavailable(RuntimeError):
    """TensorRT or a CUDA GPU is absent (or lacks a requested feature such as DLA)."""


@dataclass(frozen=True)
class EngineRequest:
    """What to build: the ONNX model, precision, device and input shapes."""

    onnx_path: str
    precision: str = "fp16"                              # fp32 | fp16 | int8
    dla_core: int = -1                                   # -1 = GPU only; >= 0 DLA with GPU fallback
    input_shapes: dict = field(default_factory=dict)     # name -> shape, for inputs with dynamic dims
    cache_dir: str = ""                                  # "" = ~/.cache/muon_ad_ros/engines
    workspace_mb: int = 1024
    calibration: Callable[[], Iterable[np.ndarray]] | None = None  # INT8: yields NCHW float32 batches
    calibration_id: str = ""                             # identifies the calibration set in the key
    retention: float | None = None                       # style models: the pruning level, in the key


@dataclass
class EngineReport:
    """What was built or loaded and where its layers run."""

    key: str
    path: str
    built: bool                       # False = loaded from the cache
    build_seconds: float
    tensorrt_version: str
    device: str                       # e.g. "GPU NVIDIA Orin (8.7)" or "DLA0 + GPU fallback"
    precision: str
    input_shapes: dict
    retention: float | None = None
    dla_layers: list = field(default_factory=list)            # network layers placed on the DLA
    gpu_fallback_layers: list = field(default_factory=list)   # layers that could not run on the DLA
    engine_layers: list = field(default_factory=list)         # the built engine's layers (inspector)


def file_sha256(path: str) -> str:
    """Returns the hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_precision(precision: str) -> str:
    """Returns the precision after checking it is one TensorRT builds here."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not fp32, fp16 or int8")
    return precision


def cache_key(model_sha256: str, tensorrt_version: str, cuda_version: str, gpu: str, dla_core: int,
              precision: str, input_shapes: dict, calibration_id: str = "", retention: float | None = None) -> str:
    """Returns the engine cache key: a short hash of everything that makes a plan invalid."""
    fields = {"model": model_sha256, "tensorrt": tensorrt_version, "cuda": cuda_version, "gpu": gpu,
              "dla_core": int(dla_core), "precision": check_precision(precision),
              "inputs": {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())},
              "calibration": calibration_id if precision == "int8" else "",
              "retention": None if retention is None else round(float(retention), 4)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def engine_path(cache_dir: str, onnx_path: str, key: str) -> str:
    """Returns where the plan for `key` is cached."""
    stem = os.path.splitext(os.path.basename(onnx_path))[0]
    return os.path.join(os.path.expanduser(cache_dir or DEFAULT_CACHE), f"{stem}-{key}.engine")


def _import():
    """Returns (tensorrt, torch) with a CUDA device; raises TensorRTUnavailable otherwise."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailable(f"TensorRT is not installed ({exc})") from exc
    try:
        import torch
    except ImportError as exc:
        raise TensorRTUnavailable(f"torch (used for CUDA buffers) is not installed ({exc})") from exc
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("no CUDA GPU is visible to torch")
    return trt, torch


def _gpu_name(torch) -> str:
    major, minor = torch.cuda.get_device_capability()
    return f"{torch.cuda.get_device_name()} ({major}.{minor})"


def build_or_load(req: EngineRequest, log: Callable[[str], None] = print) -> tuple[tensorrt.ICudaEngine, EngineReport]:
    """Returns (ICudaEngine, EngineReport): the cached plan when its key matches, else a new build
    (written to the cache atomically, with a JSON report beside it)."""
    check_request(req)   # a bad request is a ValueError even where TensorRT is absent
    trt, torch = _import()
    key = cache_key(file_sha256(req.onnx_path), trt.__version__, str(torch.version.cuda), _gpu_name(torch),
                    req.dla_core, req.precision, req.input_shapes, req.calibration_id, req.retention)
    path = engine_path(req.cache_dir, req.onnx_path, key)
    report_path = path[:-len(".engine")] + ".json"
    logger = trt.Logger(trt.Logger.WARNING)
    if os.path.isfile(path) and os.path.isfile(report_path):
        engine = deserialize(trt, logger, open(path, "rb").read(), req.dla_core, path)
        with open(report_path) as f:
            report = EngineReport(**json.load(f))
        report.built, report.build_seconds = False, 0.0
        log(f"TensorRT engine {path} loaded from the cache (key {key}); no rebuild")
        return engine, report
    log(f"building TensorRT engine for {req.onnx_path} ({req.precision}, "
        f"{'DLA' + str(req.dla_core) if req.dla_core >= 0 else 'GPU'}); this takes minutes")
    t0 = time.monotonic()
    plan, report = _build(trt, torch, logger, req, key, path)
    engine = deserialize(trt, logger, plan, req.dla_core, path)
    report.build_seconds = round(time.monotonic() - t0, 1)
    report.engine_layers = inspect_layers(trt, engine)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # the plan first, its report last: a cache hit needs both, so a crash between them means a rebuild
    for target, data in ((path, plan), (report_path, json.dumps(asdict(report), indent=1).encode())):
        with open(target + ".tmp", "wb") as f:
            f.write(data)
        os.replace(target + ".tmp", target)   # a crash mid-write never leaves a truncated plan
    log(f"TensorRT engine built in {report.build_seconds} s -> {path}; {len(report.dla_layers)} layers on "
        f"the DLA, {len(report.gpu_fallback_layers)} fell back to the GPU: {report.gpu_fallback_layers[:20]}")
    return engine, report


def check_request(req: EngineRequest) -> None:
    """Returns None after checking the request's values; raises ValueError naming a bad one."""
    check_precision(req.precision)
    if not os.path.isfile(req.onnx_path):
        raise ValueError(f"ONNX model {req.onnx_path} not found")
    if req.dla_core >= 0 and req.precision == "fp32":
        raise ValueError("the DLA runs FP16 or INT8 only; precision fp32 cannot use dla_core "
                         f"{req.dla_core}")
    if req.precision == "int8" and req.calibration is None:
        raise ValueError(f"precision int8 for {req.onnx_path} needs calibration images")
    if req.retention is not None and not 0.0 < float(req.retention) <= 1.0:
        raise ValueError(f"retention must be in (0, 1], got {req.retention!r}")


@dataclass(frozen=True)
class BuildSettings:
    """How one TensorRT release builds a precision, decided from its module alone (no GPU needed)."""

    network_flags: int               # bit mask for Builder.create_network
    strongly_typed: bool             # precision comes from the ONNX tensor types, not from builder flags
    onnx_transform: str              # "" | "fp16" (cast the model to FP16) | "qdq" (INT8 Q/DQ from calibration)
    builder_flags: tuple = ()        # trt.BuilderFlag members to set
    implicit_int8: bool = False      # an IInt8EntropyCalibrator2 on the builder config


def build_settings(trt, precision: str) -> BuildSettings:
    """Returns how this TensorRT release builds `precision`. 8.x-10.x: precision builder flags (FP16, INT8
    with the entropy calibrator). 11.x has neither: its networks are strongly typed, so FP16 casts the
    ONNX model and INT8 inserts Q/DQ pairs scaled from the same calibration images."""
    check_precision(precision)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):   # required on 8.x, a no-op on 10.x
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    weak = hasattr(trt.BuilderFlag, "FP16")
    if weak:
        implicit = hasattr(trt, "IInt8EntropyCalibrator2") and hasattr(trt.BuilderFlag, "INT8")
        if precision == "fp16":
            return BuildSettings(flags, False, "", (trt.BuilderFlag.FP16,))
        if precision == "int8" and implicit:
            # layers without INT8 kernels run FP16, not FP32
            return BuildSettings(flags, False, "", (trt.BuilderFlag.INT8, trt.BuilderFlag.FP16), implicit_int8=True)
        if precision == "int8":
            return BuildSettings(flags, False, "qdq")
        return BuildSettings(flags, False, "")
    if not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        raise TensorRTUnavailable(f"TensorRT {trt.__version__} has neither precision flags nor strongly typed "
                                  "networks")
    flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return BuildSettings(flags, True, {"fp32": "", "fp16": "fp16", "int8": "qdq"}[precision])


def qdq_model(model_bytes: bytes, batches: Callable[[], Iterable[np.ndarray]]) -> bytes:
    """Returns the ONNX model with INT8 QuantizeLinear/DequantizeLinear pairs (symmetric: TensorRT takes
    zero points of 0 only; weights per output channel) whose activation ranges come from `batches()`."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = onnx.load_from_string(model_bytes).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.iterator = iter(batches())

        def get_next(self):
            batch = next(self.iterator, None)
            return None if batch is None else {name: np.ascontiguousarray(batch, np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model_qdq.onnx")
        with open(src, "wb") as f:
            f.write(model_bytes)
        quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        with open(dst, "rb") as f:
            return f.read()


def _build(trt, torch, logger, req: EngineRequest, key: str, path: str) -> tuple[bytes, EngineReport]:
    """Returns (serialized plan bytes, EngineReport) for a fresh build."""
    settings = build_settings(trt, req.precision)
    builder = trt.Builder(logger)
    network = builder.create_network(settings.network_flags)
    parser = trt.OnnxParser(network, logger)
    with open(req.onnx_path, "rb") as f:
        model_bytes = f.read()
    if settings.onnx_transform == "fp16":
        from muon_ad_ros.runtime.onnx import fp16_model
        model_bytes = fp16_model(model_bytes)
    elif settings.onnx_transform == "qdq":
        model_bytes = qdq_model(model_bytes, req.calibration)
    if not parser.parse(model_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT cannot parse {req.onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, req.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED   # layer names for the inspector
    shapes = {}
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            if tensor.name not in req.input_shapes:
                raise ValueError(f"{req.onnx_path} input {tensor.name} has dynamic shape {shape}; "
                                 "give its shape in input_shapes")
            shape = tuple(req.input_shapes[tensor.name])
            profile.set_shape(tensor.name, shape, shape, shape)   # the DLA needs static shapes
        shapes[tensor.name] = list(shape)
    dynamic = any(d < 0 for i in range(network.num_inputs) for d in network.get_input(i).shape)
    if dynamic:
        config.add_optimization_profile(profile)
    for flag in settings.builder_flags:
        config.set_flag(flag)
    if settings.implicit_int8:
        if not hasattr(config, "int8_calibrator"):
            raise TensorRTUnavailable(f"TensorRT {trt.__version__} has an INT8 calibrator class but no "
                                      "IBuilderConfig.int8_calibrator")
        config.int8_calibrator = make_calibrator(trt, torch, req.calibration, path[:-len(".engine")] + ".calib")
        if dynamic and hasattr(config, "set_calibration_profile"):
            config.set_calibration_profile(profile)
    dla_layers, fallback = [], []
    device = f"GPU {_gpu_name(torch)}"
    if req.dla_core >= 0:
        if builder.num_DLA_cores <= req.dla_core:
            raise TensorRTUnavailable(f"dla_core {req.dla_core} requested but this device has "
                                      f"{builder.num_DLA_cores} DLA cores (TensorRT {trt.__version__})")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = req.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            (dla_layers if config.can_run_on_DLA(layer) else fallback).append(f"{layer.name} ({layer.type.name})")
        device = f"DLA{req.dla_core} + GPU fallback"
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ValueError(f"TensorRT failed to build an engine from {req.onnx_path} (see the log above)")
    report = EngineReport(key=key, path=path, built=True, build_seconds=0.0, tensorrt_version=trt.__version__,
                          device=device, precision=req.precision, input_shapes=shapes, retention=req.retention,
                          dla_layers=dla_layers, gpu_fallback_layers=fallback)
    return bytes(plan), report


def deserialize(trt, logger, plan: bytes, dla_core: int = -1, path: str = "plan") -> tensorrt.ICudaEngine:
    """Returns the ICudaEngine of a serialized plan (DLA plans need the runtime's DLA core set first)."""
    runtime = trt.Runtime(logger)
    if dla_core >= 0:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ValueError(f"TensorRT plan {path} cannot be deserialized (built by another TensorRT "
                         "version or for another GPU?)")
    return engine


def load_plan(path: str, dla_core: int = -1) -> tensorrt.ICudaEngine:
    """Returns the ICudaEngine of a prebuilt plan file (.engine/.plan)."""
    trt, _ = _import()
    with open(path, "rb") as f:
        return deserialize(trt, trt.Logger(trt.Logger.WARNING), f.read(), dla_core, path)


def inspect_layers(trt, engine: tensorrt.ICudaEngine) -> list:
    """Returns the built engine's layers as the inspector names them (DLA subgraphs show up as
    `{ForeignNode[first...last]}`)."""
    info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    return [layer if isinstance(layer, str) else layer.get("Name", "?") for layer in info.get("Layers", [])]


def calibration_files(folder: str) -> list[str]:
    """Returns the sorted image files of a calibration folder (at most MAX_CALIBRATION_IMAGES)."""
    if not folder:
        raise ValueError("precision int8 needs a folder of calibration images; none was given")
    full = os.path.abspath(os.path.expanduser(folder))
    if not os.path.isdir(full):
        raise ValueError(f"calibration folder {full} not found")
    files = sorted(os.path.join(full, f) for f in os.listdir(full) if f.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise ValueError(f"calibration folder {full} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    return files[:MAX_CALIBRATION_IMAGES]


def resized(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Returns a (1, 3, H, W) float32 batch in [0, 1] of an RGB image resized to hw (the style input)."""
    import cv2

    rgb = cv2.resize(rgb, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_AREA)
    return (rgb.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32)


def calibration_source(images, hw: tuple[int, int], prepare: Callable = resized) -> tuple[Callable, str]:
    """Returns (batches, calibration_id) for EngineRequest: `images` is a folder of image files (read
    lazily, identified by name, size and time) or a list of (H, W, 3) uint8 RGB arrays (by their bytes);
    `prepare(rgb, hw)` makes one (1, 3, H, W) float32 batch exactly as the model sees frames."""
    h = hashlib.sha256(repr((tuple(int(d) for d in hw), getattr(prepare, "__qualname__", ""))).encode())
    if isinstance(images, (str, os.PathLike)):
        files = calibration_files(str(images))
        for f in files:
            h.update(f"{f}:{os.path.getsize(f)}:{os.path.getmtime(f)}\n".encode())

        def batches():
            import cv2

            for path in files:
                bgr = cv2.imread(path, cv2.IMREAD_COLOR)
                if bgr is not None:   # an unreadable file is skipped, not a failed build
                    yield prepare(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), hw)
    else:
        images = list(images)
        if not images:
            raise ValueError("precision int8 needs calibration images; the list is empty")
        for img in images:
            h.update(np.ascontiguousarray(img).tobytes())

        def batches():
            return (prepare(img, hw) for img in images)
    return batches, h.hexdigest()


def make_calibrator(trt, torch, batches: Callable[[], Iterable[np.ndarray]], cache_file: str):
    """Returns an IInt8EntropyCalibrator2 feeding `batches()` to the builder (cached in `cache_file`)."""
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise TensorRTUnavailable(f"TensorRT {trt.__version__} has no INT8 calibrator (explicit Q/DQ only)")

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.iterator = iter(batches())
            self.device = None

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            batch = next(self.iterator, None)
            if batch is None:
                return None
            self.device = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).cuda()
            return [int(self.device.data_ptr())]

        def read_calibration_cache(self):
            return open(cache_file, "rb").read() if os.path.isfile(cache_file) else None

        def write_calibration_cache(self, cache):
            with open(cache_file, "wb") as f:
                f.write(bytes(cache))

    return Calibrator()


class EngineRunner:
    """Runs an engine with pre-allocated CUDA buffers (torch tensors) for every input and output."""

    def __init__(self, engine: tensorrt.ICudaEngine, input_shapes: dict | None = None,
                 default_shape: tuple | None = None):
        trt, torch = _import()
        self.torch = torch
        self.engine = engine
        self.context = engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.buffers, self.inputs, self.outputs = {}, [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(engine.get_tensor_shape(name))
            if is_input and any(d < 0 for d in shape):
                shape = (input_shapes or {}).get(name) or default_shape
                if shape is None:
                    raise ValueError(f"engine input {name} has dynamic shape {tuple(engine.get_tensor_shape(name))}; "
                                     "give its shape")
                self.context.set_input_shape(name, tuple(shape))
            (self.inputs if is_input else self.outputs).append(name)
        for name in self.inputs + self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.from_numpy(np.empty(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
            self.buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, int(self.buffers[name].data_ptr()))

    def shape(self, name: str) -> tuple:
        """Returns the shape of an input or output tensor."""
        return tuple(self.buffers[name].shape)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Returns the outputs (host arrays) for host input arrays."""
        torch = self.torch
        with torch.cuda.stream(self.stream):
            for name, array in feeds.items():
                buf = self.buffers[name]
                buf.copy_(torch.from_numpy(np.ascontiguousarray(array)).to(buf.dtype), non_blocking=True)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            out = {name: self.buffers[name].cpu() for name in self.outputs}
        self.stream.synchronize()
        return {name: t.numpy() for name, t in out.items()}


def engine_request(onnx_path: str | Path, precision: str = "fp16", input_hw: tuple[int, int] = (480, 640),
                   retention: float = 1.0, dla_core: int | None = None, calibration_dir: str | Path | None = None,
                   cache_dir: str | Path | None = None) -> EngineRequest:
    """Returns the builder's request for one bundle level: a static (1, 3, H, W) input (the DLA takes static
    shapes only), the retention level in the cache key, and for INT8 calibration frames from calibration_dir
    (default: the bundled photographs) resized to the engine's input."""
    from muon_ad_ros.model.bundle import INPUT_NAME, MIN_SIDE, MULTIPLE, PHOTOS_DIR, check_retention
    h, w = (int(v) for v in input_hw)
    if min(h, w) < MIN_SIDE or h % MULTIPLE or w % MULTIPLE:
        raise ValueError(f"engine input must be HxW with sides >= {MIN_SIDE} and multiples of {MULTIPLE}, got {h}x{w}")
    calibration, calibration_id = None, ""
    if check_precision(precision) == "int8":
        calibration, calibration_id = calibration_source(str(calibration_dir or PHOTOS_DIR), (h, w))
    return EngineRequest(str(onnx_path), precision, -1 if dla_core is None else int(dla_core),
                         {INPUT_NAME: (1, 3, h, w)}, str(cache_dir or ""), calibration=calibration,
                         calibration_id=calibration_id, retention=check_retention(retention))
