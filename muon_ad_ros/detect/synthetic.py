"""Synthetic detector ONNX models made with onnx.helper, for tests and the benchmark where no real
detector may be downloaded: one whose output is a given tensor (decoding checked against hand-computed
boxes) and a random-weight convolutional network of YOLOv8n-like cost (latency only, detects nothing)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def fixed_output_model(path: str, output, input_hw=(64, 64), dynamic: bool = False,
                       names: dict | None = None, end2end: bool | None = None, fp16: bool = False) -> str:
    """Returns `path` after writing a model that maps any (1, 3, H, W) image to `output` (an array, or a
    tuple of arrays for a model of several outputs such as ssd's boxes and scores; the input still flows
    through the graph, so shape checks and thread pools behave as in a real model)."""
    dtype = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    hw = ["height", "width"] if dynamic else list(input_hw)
    outputs = output if isinstance(output, tuple) else (output,)
    consts = [numpy_helper.from_array(np.asarray(o, np.float32), f"fixed{i}") for i, o in enumerate(outputs)]
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    for i in range(len(outputs)):
        nodes += [helper.make_node("Add", [f"fixed{i}", "z"], [f"y{i}"]),
                  helper.make_node("Cast", [f"y{i}"], [f"output{i}"], to=dtype)]
    graph = helper.make_graph(nodes, "fixed_output_detector",
                              [helper.make_tensor_value_info("images", dtype, [1, 3, *hw])],
                              [helper.make_tensor_value_info(f"output{i}", dtype, list(o.shape))
                               for i, o in enumerate(outputs)],
                              [*consts, zero])
    return _save(graph, path, names, end2end)


def conv_yolo_model(path: str, size: int = 640, classes: int = 80, layout: str = "yolov8",
                    widths=(16, 32, 64, 128, 256), repeats: int = 3, seed: int = 0) -> int:
    """Returns the multiply-accumulates of a random-weight YOLO-shaped network written to `path`: a
    stride-32 backbone of 3x3 conv + SiLU stages and 1x1 heads at strides 8/16/32 whose outputs are
    concatenated in `layout` (yolov8: (1, 4+C, N); yolov5: (1, N, 5+C))."""
    rng = np.random.default_rng(seed)
    inits, nodes, macs = [], [], 0
    x, cin, hw = "images", 3, size

    def conv(name, src, cin, cout, k, stride, hw, act=True, bias=0.0):
        nonlocal macs
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.w"),
                      numpy_helper.from_array(np.full(cout, bias, np.float32), f"{name}.b")])
        out_hw = hw // stride
        macs += out_hw * out_hw * cout * cin * k * k
        nodes.append(helper.make_node("Conv", [src, f"{name}.w", f"{name}.b"], [f"{name}.c"],
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        if not act:
            return f"{name}.c", out_hw
        nodes.append(helper.make_node("Sigmoid", [f"{name}.c"], [f"{name}.s"]))
        nodes.append(helper.make_node("Mul", [f"{name}.c", f"{name}.s"], [f"{name}.y"]))   # SiLU
        return f"{name}.y", out_hw

    channels = 4 + classes if layout == "yolov8" else 5 + classes
    heads = []
    for stage, cout in enumerate(widths):
        x, hw = conv(f"s{stage}.down", x, cin, cout, 3, 2, hw)
        for r in range(repeats):
            x, hw = conv(f"s{stage}.c{r}", x, cout, cout, 3, 1, hw)
        cin = cout
        if stage >= len(widths) - 3:   # strides 8, 16, 32
            # A strongly negative bias keeps scores low, as a trained model's are on most anchors,
            # so NMS sees a realistic handful of candidates instead of every anchor.
            y, _ = conv(f"head{stage}", x, cout, channels, 1, 1, hw, act=False, bias=-8.0)
            shape = numpy_helper.from_array(np.array([1, channels, -1], np.int64), f"head{stage}.shape")
            inits.append(shape)
            nodes.append(helper.make_node("Reshape", [y, f"head{stage}.shape"], [f"head{stage}.flat"]))
            heads.append(f"head{stage}.flat")
    nodes.append(helper.make_node("Concat", heads, ["cat"], axis=2))
    n = sum((size // s) ** 2 for s in (8, 16, 32))
    if layout == "yolov8":
        nodes.append(helper.make_node("Sigmoid", ["cat"], ["output0"]))
        out_shape = [1, channels, n]
    else:
        nodes.append(helper.make_node("Sigmoid", ["cat"], ["sig"]))
        nodes.append(helper.make_node("Transpose", ["sig"], ["output0"], perm=[0, 2, 1]))
        out_shape = [1, n, channels]
    graph = helper.make_graph(nodes, f"synthetic_{layout}",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)], inits)
    _save(graph, path, {i: f"class_{i}" for i in range(classes)}, None)
    return int(macs)


def _save(graph, path: str, names: dict | None, end2end: bool | None) -> str:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8   # readable by onnxruntime >= 1.14 and TensorRT 8.5+
    meta = {}
    if names is not None:
        meta["names"] = repr(dict(names))   # how Ultralytics stores class names
    if end2end is not None:
        meta["end2end"] = str(end2end)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
