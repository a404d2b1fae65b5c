"""Style-transfer inference backends behind one interface: ONNX Runtime (default), torch, TensorRT.

A backend opens a model bundle (model.json + one model per retention level, see train/export.py),
loads every level at open time so that switching retention never pauses for a reload, and keeps
its input/output buffers per frame shape so the hot path allocates nothing (docs/method.md section 6).
No rclpy, and no torch import unless the torch or TensorRT backend is asked for.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np

from muon_ad_ros.errors import BackendUnavailable, ModelError
from muon_ad_ros.model.bundle import (PruningInfo, engine_size, from_network, input_scale, level_for, network_size,
                                     padded_size, read_bundle, to_network)
from muon_ad_ros.runtime.onnx import batch_dynamic, session_options

KINDS = ("onnxruntime", "torch", "tensorrt")
class StyleBackend:
    """Common part of the backends: level choice, pruning state, frame buffers and conversions."""

    name = "base"
    batch = False       # whether infer_many takes more than one frame per network call

    def __init__(self, model_dir: str | Path, precision: str):
        self.root, self.meta = read_bundle(model_dir)
        self.precision = precision
        self.device = "cpu"
        self._info = {float(lv["retention"]): lv for lv in self.meta["levels"]}
        self.levels = tuple(sorted(self._info))
        self.scale = float(input_scale(self.meta))
        self._frames: dict[tuple[int, int], dict] = {}
        self._resized: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        # the last infer()'s milliseconds: before the network (resize, layout), the network, after it
        self.stage_ms = (0.0, 0.0, 0.0)
        # fixed-shape backends (TensorRT engines, built ahead): the frame size the models were built for;
        # frames of another size are resized to it and their output back. None: any frame size runs.
        self.frame_hw: tuple[int, int] | None = None

    def scale_refusal(self, scale: float) -> str | None:
        """Return why frames cannot run at `scale` times the bundle's input scale (the style node's
        resolution_scale), or None when they can."""
        if self.frame_hw is not None and scale != 1.0:
            return (f"resolution_scale {scale:g} needs another input shape; the {self.name} models take one "
                    f"(built for the bundle's input scale {self.scale:g}): set the bundle's scale instead "
                    "(muon-ad export --input-scale)")
        return None

    def level_for(self, retention: float) -> float:
        """Return the level a retention runs at: the nearest level <= retention (the lowest if below)."""
        r = float(retention)
        if math.isnan(r) or not 0.0 < r <= 1.0:
            raise ValueError(f"retention must be in (0, 1], got {retention!r}")
        return level_for(self.levels, r)

    def pruning_state(self, retention: float) -> PruningInfo:
        """Return the PruningInfo of the level this retention runs at."""
        level = self.level_for(retention)
        lv = self._info[level]
        # bundles written with attention blocks call the same counts attention_heads
        groups = lv.get("context_groups", lv.get("attention_heads", []))
        return PruningInfo(level, list(lv.get("retention_per_stage", [])), [int(g) for g in groups],
                           float(lv.get("flops_fraction", level)))

    def _buffers(self, n: int, h: int, w: int) -> dict:
        """Returns the buffers of a batch of n frames of this size (created once per size and batch)."""
        buf = self._frames.get((n, h, w))
        if buf is None:
            # pad to the network's multiple of 8 (edge replicated) and crop the result
            ph, pw = padded_size(h, w)
            buf = {"input": np.zeros((n, 3, ph, pw), np.float32), "output": np.zeros((n, 3, ph, pw), np.float32),
                   "planes": [np.empty((h, w), np.uint8) for _ in range(3)],
                   "rgb": [np.empty((h, w, 3), np.uint8) for _ in range(n)]}
            buf.update(self._bind(buf))
            self._frames[(n, h, w)] = buf
        return buf

    def _load(self, buf: dict, i: int, rgb: np.ndarray) -> None:
        """Fills batch item i of the network input from a frame."""
        h, w = rgb.shape[:2]
        # OpenCV's split/convert/merge: one SIMD pass each, 4-6x faster than strided numpy here
        cv2.split(rgb, buf["planes"])
        x = buf["input"][i]
        for c in range(3):
            np.multiply(buf["planes"][c], np.float32(1 / 255), out=x[c, :h, :w])
        if x.shape[1] > h:
            x[:, h:, :w] = x[:, h - 1:h, :w]
        if x.shape[2] > w:
            x[:, :, w:] = x[:, :, w - 1:w]

    def _unload(self, buf: dict, i: int) -> np.ndarray:
        """Returns batch item i's reused uint8 output buffer filled from the float output."""
        h, w = buf["rgb"][i].shape[:2]
        for c in range(3):
            plane = buf["output"][i, c, :h, :w]
            if not plane.flags.c_contiguous:  # padded frame
                plane = np.ascontiguousarray(plane)
            cv2.convertScaleAbs(plane, buf["planes"][c], 255.0)  # rounds and saturates to uint8
        cv2.merge(buf["planes"], buf["rgb"][i])
        return buf["rgb"][i]

    def _bind(self, buf: dict) -> dict:
        """Return backend-specific per-shape objects (e.g. IO bindings) for new buffers."""
        return {}

    def infer(self, rgb: np.ndarray, retention: float = 1.0, scale: float = 1.0) -> np.ndarray:
        """Return the stylized (H, W, 3) uint8 frame (a reused buffer, valid until the next call).

        The network runs at the bundle's input scale times `scale` (the style node's resolution_scale), on a
        fixed-shape backend at the size its models were built for (frame_hw), and its output is resized back
        to the frame's size."""
        return self.infer_many([rgb], retention, scale)[0]

    def infer_many(self, rgbs: list[np.ndarray], retention: float = 1.0, scale: float = 1.0) -> list[np.ndarray]:
        """Return the stylized frames of frames of one size in one network call (a batch; `batch` says whether
        this backend takes more than one), each a reused buffer valid until the next call."""
        level = self.level_for(retention)
        for rgb in rgbs:
            if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
                desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
                raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {desc}")
        n = len(rgbs)
        if n > 1 and not self.batch:
            raise ValueError(f"the {self.name} backend runs one frame per call, got {n}")
        h, w = rgbs[0].shape[:2]
        if any(rgb.shape[:2] != (h, w) for rgb in rgbs):
            raise ValueError(f"the frames of one call must share a size, got {[r.shape[:2] for r in rgbs]}")
        t0 = time.perf_counter()
        size = network_size(*(self.frame_hw or (h, w)), self.scale * scale)
        buf = self._buffers(n, *size)
        fulls = []
        for i, rgb in enumerate(rgbs):
            if size == (h, w):
                small = full = rgb
            else:
                key = (i, h, w) + size
                if key not in self._resized:
                    self._resized[key] = (np.empty(size + (3,), np.uint8), np.empty((h, w, 3), np.uint8))
                small, full = self._resized[key]
                to_network(rgb, self.scale * scale, dst=small, frame_hw=self.frame_hw)
            self._load(buf, i, small)
            fulls.append(None if full is rgb else full)
        t1 = time.perf_counter()
        self._run(buf, level)
        t2 = time.perf_counter()
        outs = []
        for i, full in enumerate(fulls):
            out = self._unload(buf, i)
            outs.append(out if full is None else from_network(out, h, w, dst=full))
        self.stage_ms = ((t1 - t0) * 1e3, (t2 - t1) * 1e3, (time.perf_counter() - t2) * 1e3)
        return outs

    def _run(self, buf: dict, level: float) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the sessions and buffers."""
        self._frames.clear()
        self._resized.clear()


class OnnxRuntimeBackend(StyleBackend):
    """ONNX Runtime on the CPU: one session per level, IO binding onto the pre-allocated buffers. With `batch`
    the models' batch size is opened where it is a fixed 1, so several frames can run in one call (it imports
    the onnx package, ~0.7 s, which a one-stream node leaves off its path to the first frame)."""

    name = "onnxruntime"

    def __init__(self, model_dir, threads: int = 0, precision: str = "fp32", spin: bool = False,
                 batch: bool = False):
        super().__init__(model_dir, precision)
        self.batch = bool(batch)
        import onnxruntime as ort

        if precision not in ("fp32", "fp16"):
            raise ValueError(f"onnxruntime precision must be fp32 or fp16, got {precision!r}")
        key = "onnx" if precision == "fp32" else "onnx_fp16"
        opts = session_options(threads, spin)
        self.sessions = {}
        for level in self.levels:
            file = self._info[level].get(key)
            if file is None:
                raise ModelError(f"{self.root / 'model.json'}: no {precision} model for retention {level} "
                                 f"(export with --fp16)")
            self.sessions[level] = self._open(ort, self.root / file, opts, self.batch)

    @staticmethod
    def _open(ort, path: Path, opts, batch: bool = False):
        """Return an InferenceSession after checking the model's I/O shapes."""
        if not path.is_file():
            raise ModelError(f"{path}: missing")
        try:
            model = batch_dynamic(path.read_bytes()) if batch else str(path)
            sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise ModelError(f"{path}: cannot be loaded by ONNX Runtime ({type(exc).__name__}: {exc})") from None
        ins, outs = sess.get_inputs(), sess.get_outputs()
        for role, io in (("input", ins), ("output", outs)):
            shape = io[0].shape if len(io) == 1 else None
            if shape is None or len(shape) != 4 or shape[1] != 3 or io[0].type != "tensor(float)":
                got = [(i.name, i.shape, i.type) for i in io]
                raise ModelError(f"{path}: expected one float {role} of shape (1, 3, H, W), got {got}")
        return sess

    def _bind(self, buf):
        bindings = {}
        for level, sess in self.sessions.items():
            b = sess.io_binding()
            inp, out = buf["input"], buf["output"]
            b.bind_input(sess.get_inputs()[0].name, "cpu", 0, np.float32, list(inp.shape), inp.ctypes.data)
            b.bind_output(sess.get_outputs()[0].name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
            bindings[level] = b
        return {"bindings": bindings}

    def _run(self, buf, level):
        self.sessions[level].run_with_iobinding(buf["bindings"][level])

    def close(self):
        super().close()
        self.sessions.clear()


class TorchBackend(StyleBackend):
    """The student in PyTorch (student.pt, weights_only=True): every level is one network."""

    name = "torch"
    batch = True

    def __init__(self, model_dir, threads: int = 0, precision: str = "fp32"):
        super().__init__(model_dir, precision)
        import torch

        from muon_ad_ros.model.student import Student, StudentConfig

        if precision != "fp32":
            raise ValueError(f"torch backend precision must be fp32 on CPU, got {precision!r}")
        if threads:
            torch.set_num_threads(int(threads))
        path = self.root / self.meta.get("weights", "student.pt")
        if not path.is_file():
            raise ModelError(f"{path}: missing (the torch backend needs the bundle's state_dict)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: pickle/zip errors of many types
            raise ModelError(f"{path}: not a loadable state_dict ({type(exc).__name__}: {exc})") from None
        self.student = Student(StudentConfig.from_saved(self.meta.get("student_config", {}), state)).eval()
        try:
            self.student.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ModelError(f"{path}: weights do not fit the student in model.json ({exc})") from None
        # oneDNN's convolutions run 1.5-1.7x faster on channels-last tensors (measured at 640x480)
        self.student.to(memory_format=torch.channels_last)
        self.torch = torch

    def _bind(self, buf):
        t = self.torch
        return {"nchw": t.from_numpy(buf["input"]),  # shares memory with the input buffer
                "tensor": t.empty(buf["input"].shape).contiguous(memory_format=t.channels_last)}

    def _run(self, buf, level):
        with self.torch.inference_mode():
            buf["tensor"].copy_(buf["nchw"])
            y = self.student(buf["tensor"], level)
        np.copyto(buf["output"], y.numpy())


class TensorRTBackend(StyleBackend):
    """TensorRT engines (one per level, built once and cached; optional DLA core) on CUDA buffers."""

    name = "tensorrt"

    def __init__(self, model_dir, threads: int = 0, precision: str = "fp32", input_hw=(480, 640),
                 dla_core: int | None = None, cache_dir=None, calibration_dir=None):
        super().__init__(model_dir, precision)
        from . import tensorrt_engine as te

        # engines have one static shape (the DLA needs it, and a build takes minutes on a Jetson): the
        # network's size for input_hw frames at the bundle's scale; frames of other sizes are resized to it
        self.frame_hw = tuple(int(v) for v in input_hw)
        self.network_hw = engine_size(*self.frame_hw, self.scale)
        self.device = f"dla{dla_core}" if dla_core is not None else "cuda:0"
        self.contexts, self.reports = {}, {}
        for level in self.levels:
            req = te.engine_request(self.root / self._info[level]["onnx"], precision, self.network_hw, level,
                                    dla_core, calibration_dir, cache_dir)
            try:
                engine, self.reports[level] = te.build_or_load(req)   # cached: built once per key
            except te.TensorRTUnavailable as exc:
                raise BackendUnavailable(str(exc)) from exc
            self.contexts[level] = (engine, engine.create_execution_context())
        import torch

        self.torch = torch
        self.stream = torch.cuda.Stream()

    def _bind(self, buf):
        h, w = buf["input"].shape[2:]
        if (h, w) != self.network_hw:
            raise ValueError(f"TensorRT engines were built for {self.frame_hw[1]}x{self.frame_hw[0]} frames at input "
                             f"scale {self.scale} ({self.network_hw[1]}x{self.network_hw[0]}), got a {w}x{h} input")
        t = self.torch
        dev_in = t.empty((1, 3, h, w), device="cuda")
        dev_out = t.empty((1, 3, h, w), device="cuda")
        for engine, ctx in self.contexts.values():
            ctx.set_input_shape("image", (1, 3, h, w))
            ctx.set_tensor_address("image", dev_in.data_ptr())
            ctx.set_tensor_address("stylized", dev_out.data_ptr())
        return {"dev_in": dev_in, "dev_out": dev_out, "host_in": t.from_numpy(buf["input"]),
                "host_out": t.from_numpy(buf["output"])}

    def _run(self, buf, level):
        with self.torch.cuda.stream(self.stream):
            buf["dev_in"].copy_(buf["host_in"])
            if not self.contexts[level][1].execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT execute_async_v3 failed at retention {level}")
            buf["host_out"].copy_(buf["dev_out"])
        self.stream.synchronize()


def open_style_backend(kind: str, model_dir: str | Path, *, threads: int = 0, precision: str = "fp32",
                       **options) -> StyleBackend:
    """Return an opened backend of `kind` (onnxruntime, torch, tensorrt) for the bundle in model_dir."""
    if kind == "onnxruntime":
        return OnnxRuntimeBackend(model_dir, threads, precision, **options)
    if kind == "torch":
        return TorchBackend(model_dir, threads, precision, **options)
    if kind == "tensorrt":
        return TensorRTBackend(model_dir, threads, precision, **options)
    raise ValueError(f"unknown style backend {kind!r}; choose one of {', '.join(KINDS)}")
