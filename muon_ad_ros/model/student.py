"""The real-time student: a feed-forward style network with run-time channel pruning.

Built for CPU and the Jetson DLA (METHOD.md section 6): convolutions, ReLU, average pooling, integer
nearest and bilinear upsampling, edge (replicate) padding, no InstanceNorm. A 4x4 stride-4 stem and
a stride-2 conv take the frame to 1/8 where residual blocks and global-context blocks work; a 1x1 conv + 2x
upsampling (nearest or bilinear) with an additive skip return to 1/4, where a 3x3 conv
emits one RGB value per 4x4 block; bilinear upsampling adds it to the input times a per-channel gain
before the output sigmoid (`StudentConfig.subpixel` keeps the first, depth-to-space head).
No learned layer runs at full resolution: profiling showed that full- and half-resolution layers are
memory-bound and would not shrink with retention; the full-resolution tail (resize, multiply, add,
sigmoid) is a fixed cost of a few ms at 640x480.
Input constraint: H and W multiples of 8 and at least 64.

Global context blocks stand where METHOD.md has multi-head attention (docs/method.md, section 4): students
trained with attention blocks (queries on a 1/16 grid, keys pooled to 1/64) attend uniformly over the
keys on every photo (entropy = log of the key count to within 0.001 nats), so each block adds the same
projected frame mean at every position and the entropy gate never skips one. A context block computes
exactly that: the frame mean, a value and an output projection (1x1 convs on a 1x1 map), added back
everywhere, without the attention's cost. Bundles with attention blocks load into it (their query and
key weights, which have no effect under uniform attention, are dropped: see upgrade_state).

Dynamic pruning (METHOD.md section 4): every channel group is kept in importance order, so a
retention r runs convolutions on the first ceil(r * C) channels only (weight slicing, physically
smaller layers; rounded up to `channel_multiple` so CPU kernels stay in their 8-wide blocks);
context blocks run the first max(min_groups, ceil(r * groups)) groups of `group_width` channels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from muon_ad_ros.model.bundle import check_retention


@dataclass
class StudentConfig:
    """The student's architecture; the defaults are the shipped starry_night's first run (sized for <= 20 ms at
    640x480); its fine-tune switches `upsample` to bilinear."""

    widths: tuple[int, int] = (32, 64)  # channels at 1/4 and 1/8 resolution
    res_blocks: int = 2  # residual blocks at 1/8
    res_hidden: int = 64  # hidden channels inside a residual block
    context_blocks: int = 2  # global-context blocks at 1/8
    context_groups: int = 16  # the context blocks' inner channels, in groups of group_width
    group_width: int = 8
    min_groups: int = 8  # kept at every retention (METHOD.md section 4's "8 of 16 heads")
    channel_multiple: int = 8  # kept channels round up to a multiple of this
    # Output head. 1 (default): the 3x3 conv at 1/4 emits one RGB value per 4x4 block, bilinear upsampling
    # brings it to full resolution, where it is added to the input times a per-channel gain: no learned
    # weight can paint a 4-px period. 2: 2x2 sub-pixels, then bilinear 2x. 4: the first shipped
    # head, 4x4 sub-pixels (depth-to-space) plus a 4x4 patch colour path; it left a 4-px checkerboard in
    # trained models. Bundles written before this field existed are subpixel 4 (see from_saved).
    subpixel: int = 1
    # Padding of the 3x3 convolutions. "replicate" (ONNX Pad, mode edge): a border pixel sees the same
    # kind of neighbourhood as an interior one, so the student has no border to learn a frame from;
    # zero padding let the shipped zero-padded models paint a bright or coloured frame (outer 4-px strip
    # up to 76/255 from the strip 8-16 px in, where the photo's own difference was 3). Bundles written
    # before this field existed are "zeros" (see from_saved).
    padding: str = "replicate"
    # Channels of a learned 1/2-resolution stage before the output (0: none, the smooth head above). With
    # it, a 2x2 stride-2 conv reads the image at 1/2, the 1/4 decoder is brought up by a 1x1 conv and
    # nearest 2x, a 3x3 conv mixes the two, and the output conv emits 2x2 sub-pixels there (depth-to-space to
    # full resolution) added to the input times the gain: strokes down to 1-2 px can be placed, where the
    # smooth head's bilinear 4x upsampling of the 1/4 output cannot paint anything finer than 4 px.
    half_width: int = 0
    # How the decoder brings the 1/8 features to 1/4 (and the 1/4 decoder to 1/2 in the stage above):
    # "nearest" copies each 1/8 value into a 2x2 block, which the trained nearest students turned into a
    # fixed 8-px checkerboard over every frame (their texture); "bilinear" (half-pixel, an ONNX Resize and
    # a DLA resize layer with an integer scale) has no block edges to paint. Bundles written before this
    # field existed are "nearest" (see from_saved). The default stays nearest: trained from scratch with
    # bilinear, a student drew diagonal streaks far from the style; the shipped bundles switch to bilinear
    # in a fine-tune with the lattice penalty (docs/method.md, section 4).
    upsample: str = "nearest"

    @classmethod
    def from_saved(cls, saved: dict, state: dict | None = None) -> "StudentConfig":
        """Return the config saved in a bundle or checkpoint (lists back to tuples). Where ``subpixel`` is
        missing (bundles written before it existed, bare state_dicts) it is read from the output conv's
        width in ``state`` (3 * subpixel^2 channels), else the first head's 4; a missing ``half_width`` is
        read from the half-resolution stem's weights (0 without them; with them the padding is edge). Attention-block fields
        of older bundles map to their context blocks (same value and output weights)."""
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(saved).items()}
        for old, new in ATTENTION_FIELDS.items():
            if old in cfg:
                cfg.setdefault(new, cfg.pop(old))
        for gone in ("query_pool", "key_pool"):
            cfg.pop(gone, None)
        stem2 = (state or {}).get("stem2.weight")
        if "half_width" not in cfg and stem2 is not None:  # a bare state_dict of a half-resolution student
            cfg["half_width"] = int(stem2.shape[0])
            cfg.setdefault("padding", "replicate")          # the stage came after edge padding
        if "subpixel" not in cfg:
            out = (state or {}).get("out.weight")
            if cfg.get("half_width"):
                cfg["subpixel"] = 1
            else:
                cfg["subpixel"] = {3: 1, 12: 2}.get(int(out.shape[0]), 4) if out is not None else 4
        cfg.setdefault("padding", "zeros")
        cfg.setdefault("upsample", "nearest")
        return cls(**cfg)


# StudentConfig fields of bundles written with attention blocks -> their context-block fields
ATTENTION_FIELDS = {"attention_blocks": "context_blocks", "heads": "context_groups", "head_dim": "group_width",
                    "min_heads": "min_groups"}


def upgrade_state(state: dict) -> dict:
    """Returns a state_dict of an attention-block student as its context-block equivalent: attn.i.{v,o}
    become context.i.{v,o}; the query and key weights and the gate buffer are dropped (with uniform
    attention they had no effect on the output). A block its gate had switched off (keep_gate False, none of
    the shipped ones) runs at every level after the upgrade; the bundle's exported ONNX levels keep the
    old behaviour. Other state_dicts are returned unchanged."""
    if not any(k.startswith("attn.") for k in state):
        return state
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] != "attn":
            out[k] = v
        elif parts[2] in ("v", "o"):
            out[".".join(["context"] + parts[1:])] = v
    return out


def kept(channels: int, retention: float, multiple: int = 1) -> int:
    """Return how many of `channels` a retention keeps: ceil(r * C) rounded up to `multiple`."""
    k = math.ceil(retention * channels - 1e-6)
    return max(1, min(channels, -(-k // multiple) * multiple))


def check_input(x: torch.Tensor) -> None:
    """Raise ValueError unless x is (N, 3, H, W) with H, W multiples of 8 and >= 64."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"student input must be (N, 3, H, W), got shape {tuple(x.shape)}")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % 8 or w % 8 or h < 64 or w < 64:
        raise ValueError(f"student input H, W must be multiples of 8 and >= 64, got {h}x{w}")


def depth_to_space(x: torch.Tensor, r: int) -> torch.Tensor:
    """Return F.pixel_shuffle(x, r); in an ONNX export, the same values as a transposed convolution with an
    identity kernel (stride r), so the graph holds a ConvTranspose instead of a DepthToSpace.

    Measured (AMD EPYC, 2 cores, 12 x 240 x 320 -> 3 x 480 x 640): ONNX Runtime's DepthToSpace 1.74 ms, its
    ConvTranspose 0.37 ms, so the half-resolution head's student runs 1.3 ms faster at every level; in eager
    PyTorch the other way round (pixel_shuffle 1.1 ms, conv_transpose2d 6.5 ms), hence the two paths.
    TensorRT parses the ConvTranspose as a deconvolution whose kernel equals its stride, a layer type the
    DLA lists (its placement is not checked on a Jetson: docs/tensorrt.md).
    """
    if not torch.onnx.is_in_onnx_export():
        return F.pixel_shuffle(x, r)
    c = int(x.shape[1]) // (r * r)  # a Python int: the kernel is a constant of the exported graph
    eye = torch.eye(c * r * r, dtype=x.dtype, device=x.device).reshape(c * r * r, c, r, r)
    return F.conv_transpose2d(x, eye, stride=r)


class SlicedConv(nn.Conv2d):
    """A convolution that runs on the leading channels of its input and output groups.

    `out_group`/`in_group` name the channel groups whose kept count slices the weight; `block`
    is the number of consecutive channels per group member (a context block's group width).
    """

    def __init__(self, c_in, c_out, k, stride=1, out_group=None, in_group=None, out_block=1, in_block=1, padding=None,
                 padding_mode="zeros"):
        pad = k // 2 if padding is None else padding
        if padding_mode not in ("zeros", "replicate"):
            raise ValueError(f"padding must be 'zeros' or 'replicate', got {padding_mode!r}")
        # replicate padding is an explicit F.pad before an unpadded conv, for sliced and full weights alike
        self.edge_pad = pad if padding_mode == "replicate" else 0
        super().__init__(c_in, c_out, k, stride=stride, padding=pad - self.edge_pad)
        self.out_group, self.in_group = out_group, in_group
        self.out_block, self.in_block = out_block, in_block

    def sizes(self, counts: dict[str, int]) -> tuple[int, int]:
        """Return the (out, in) channel counts this layer runs with for the given group counts."""
        c_out = self.out_channels if self.out_group is None else counts[self.out_group] * self.out_block
        c_in = self.in_channels if self.in_group is None else counts[self.in_group] * self.in_block
        return c_out, c_in

    def forward(self, x: torch.Tensor, counts: dict[str, int]) -> torch.Tensor:
        c_out, c_in = self.sizes(counts)
        if self.edge_pad:
            x = F.pad(x, (self.edge_pad,) * 4, mode="replicate")
        if (c_out, c_in) == (self.out_channels, self.in_channels):
            return super().forward(x)
        # weight slicing: a physically smaller convolution, not a zero mask (METHOD.md section 4)
        return F.conv2d(x, self.weight[:c_out, :c_in], self.bias[:c_out], self.stride, self.padding)

    def macs(self, h: int, w: int, counts: dict[str, int]) -> tuple[int, int, int]:
        """Return (multiply-accumulates, out_h, out_w) for an input of h x w."""
        oh, ow = (h + self.stride[0] - 1) // self.stride[0], (w + self.stride[1] - 1) // self.stride[1]
        c_out, c_in = self.sizes(counts)
        return oh * ow * c_out * c_in * self.kernel_size[0] * self.kernel_size[1], oh, ow


class ResBlock(nn.Module):
    """Return x + conv(relu(conv(x))): a residual block on the 1/8 stream."""

    def __init__(self, name: str, width: int, hidden: int, padding: str = "replicate"):
        super().__init__()
        self.conv_a = SlicedConv(width, hidden, 3, out_group=name, in_group="stream", padding_mode=padding)
        self.conv_b = SlicedConv(hidden, width, 3, out_group="stream", in_group=name, padding_mode=padding)

    def forward(self, x, counts):
        return x + self.conv_b(F.relu(self.conv_a(x, counts)), counts)


class ContextBlock(nn.Module):
    """x + o(v(mean of x over the frame)): global context added back at every position of the 1/8 map."""

    def __init__(self, name: str, width: int, cfg: StudentConfig):
        super().__init__()
        self.name, self.groups, self.group_width = name, cfg.context_groups, cfg.group_width
        inner = cfg.context_groups * cfg.group_width
        self.v = SlicedConv(width, inner, 1, out_group=name, in_group="stream", out_block=cfg.group_width)
        self.o = SlicedConv(inner, width, 1, out_group="stream", in_group=name, in_block=cfg.group_width)
        nn.init.zeros_(self.o.weight)  # starts as identity, so an untrained block changes nothing
        nn.init.zeros_(self.o.bias)

    def forward(self, x, counts):
        # adaptive_avg_pool2d(x, 1) exports as ONNX GlobalAveragePool (TensorRT and the DLA run it)
        return x + self.o(self.v(F.adaptive_avg_pool2d(x, 1), counts), counts)

    def macs(self, h: int, w: int, counts: dict[str, int]) -> int:
        """Return the multiply-accumulates of this block on an h x w (1/8) feature map (mean and add
        counted as one each per value)."""
        return 2 * h * w * counts["stream"] + self.v.macs(1, 1, counts)[0] + self.o.macs(1, 1, counts)[0]


class Student(nn.Module):
    """Feed-forward style network: (N,3,H,W) RGB in [0,1] -> the stylized frame, same shape."""

    # the layers that read the image and write the output (and the colour path beside them): AdamW's,
    # not Muon's (train/muon.py muon_param_groups)
    io_layers = ("stem", "stem2", "out", "skip")

    def __init__(self, config: StudentConfig | None = None):
        super().__init__()
        self.config = cfg = config or StudentConfig()
        c4, c8 = cfg.widths
        self.stem = SlicedConv(3, c4, 4, stride=4, padding=0, out_group="skip4")
        pm = cfg.padding
        self.down = SlicedConv(c4, c8, 3, stride=2, out_group="stream", in_group="skip4", padding_mode=pm)
        self.res = nn.ModuleList(ResBlock(f"res{i}", c8, cfg.res_hidden, pm) for i in range(cfg.res_blocks))
        self.context = nn.ModuleList(ContextBlock(f"context{i}", c8, cfg) for i in range(cfg.context_blocks))
        if cfg.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {cfg.upsample!r}")
        # 1x1 conv at 1/8 then upsampling: the same function as upsample-then-1x1 (both upsamplings are
        # linear per channel), 4x cheaper
        self.up = SlicedConv(c8, c4, 1, out_group="skip4", in_group="stream")
        self.dec = SlicedConv(c4, c4, 3, out_group="dec4", in_group="skip4", padding_mode=pm)
        s = cfg.subpixel
        if s not in (1, 2, 4):
            raise ValueError(f"subpixel must be 1, 2 or 4, got {s}")
        c2 = cfg.half_width
        if c2 < 0 or (c2 and s != 1):
            raise ValueError(f"half_width must be >= 0 and needs subpixel 1, got {c2} with subpixel {s}")
        if c2:
            self.stem2 = SlicedConv(3, c2, 2, stride=2, padding=0, out_group="skip2")
            self.up2 = SlicedConv(c4, c2, 1, out_group="skip2", in_group="dec4")
            self.dec2 = SlicedConv(c2, c2, 3, out_group="dec2", in_group="skip2", padding_mode=pm)
            self.out = SlicedConv(c2, 12, 3, in_group="dec2", padding_mode=pm)  # 3 colours x 2x2 sub-pixels
            with torch.no_grad():  # the four sub-pixels start equal (ICNR): no 2-px checkerboard at the start
                self.out.weight.copy_(self.out.weight[::4].repeat_interleave(4, dim=0))
        else:
            self.out = SlicedConv(c4, 3 * s * s, 3, in_group="dec4", padding_mode=pm)  # 3 colours x s x s
        if s == 4:
            # full-resolution colour path of the input in the same sub-pixel layout (a 4x4 stride-4
            # conv): fine content detail survives, and the add and sigmoid run at 1/4 resolution
            self.skip = SlicedConv(3, 48, 4, stride=4, padding=0)
            with torch.no_grad():  # start as sigmoid(4x - 2): the untrained student shows its input
                self.skip.weight.zero_()
                for c, i in ((c, i) for c in range(3) for i in range(16)):
                    self.skip.weight[16 * c + i, c, i // 4, i % 4] = 4.0
                self.skip.bias.fill_(-2.0)
        else:
            # A per-channel gain of the input at full resolution (its bias lives in the head's bias, which
            # bilinear upsampling carries unchanged). Measured in ONNX Runtime at 640x480: a 1x1 3->3 conv
            # there took 5.4 ms, an elementwise multiply 0.5 ms; the trained 3x3 colour matrices of the
            # first smooth-head models were diagonal to within 0.35 of 3.6-4.1.
            self.colour_gain = nn.Parameter(torch.full((1, 3, 1, 1), 4.0))  # start as sigmoid(4x - 2)
            with torch.no_grad():
                self.out.bias.fill_(-2.0)

    # -- channel groups ----------------------------------------------------------------------
    def channel_groups(self) -> dict[str, int]:
        """Return {group name: number of members}: the keys reorder_channels and importance use."""
        c4, c8 = self.config.widths
        groups = {"skip4": c4, "stream": c8, "dec4": c4}
        if self.config.half_width:
            groups.update(skip2=self.config.half_width, dec2=self.config.half_width)
        groups.update({f"res{i}": self.config.res_hidden for i in range(len(self.res))})
        groups.update({blk.name: blk.groups for blk in self.context})
        return groups

    def channel_params(self) -> dict[str, list[tuple[torch.Tensor, int, int]]]:
        """Return {group: [(parameter, dim, block)]}: where each group's members sit in the weights.

        Member m of a group occupies indices m*block .. m*block+block-1 along `dim`. train/pruning.py
        reduces per-weight scores over the other dims (and the block) to one score per member.
        """
        params: dict[str, list] = {g: [] for g in self.channel_groups()}
        for conv in self.modules():
            if not isinstance(conv, SlicedConv):
                continue
            if conv.out_group is not None:
                params[conv.out_group] += [(conv.weight, 0, conv.out_block), (conv.bias, 0, conv.out_block)]
            if conv.in_group is not None:
                params[conv.in_group].append((conv.weight, 1, conv.in_block))
        return params

    def counts(self, retention: float) -> dict[str, int]:
        """Return {group: members kept} at this retention (context blocks: at least min_groups)."""
        r = check_retention(retention)
        counts = {g: kept(n, r, self.config.channel_multiple) for g, n in self.channel_groups().items()}
        for blk in self.context:
            counts[blk.name] = max(min(self.config.min_groups, blk.groups), kept(blk.groups, r))
        return counts

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """nn.Module.load_state_dict, taking attention-block state_dicts too (upgrade_state)."""
        return super().load_state_dict(upgrade_state(state_dict), strict=strict, assign=assign)

    @torch.no_grad()
    def reorder_channels(self, importance: dict[str, torch.Tensor]) -> None:
        """Permute each named group so its most important members come first (function unchanged)."""
        groups, params = self.channel_groups(), self.channel_params()
        for name, score in importance.items():
            if name not in groups:
                raise KeyError(f"unknown channel group {name!r}; groups are {sorted(groups)}")
            score = torch.as_tensor(score).flatten()
            if score.numel() != groups[name]:
                raise ValueError(f"importance for {name!r} has {score.numel()} values, group has {groups[name]}")
            order = torch.argsort(score.to(torch.float64), descending=True, stable=True)
            for p, dim, block in params[name]:
                idx = (order[:, None] * block + torch.arange(block)[None, :]).flatten().to(p.device)
                p.copy_(p.index_select(dim, idx))

    def context_blocks(self) -> list[ContextBlock]:
        """Return the global-context blocks, in network order."""
        return list(self.context)

    # -- forward and cost --------------------------------------------------------------------
    def forward(self, x: torch.Tensor, retention: float = 1.0) -> torch.Tensor:
        check_input(x)
        c = self.counts(retention)
        e = F.relu(self.stem(x, c))  # 1/4
        h = F.relu(self.down(e, c))  # 1/8
        for blk in self.res:
            h = F.relu(blk(h, c))
        for blk in self.context:
            h = blk(h, c)
        d = F.relu(self.dec(self._up2x(self.up(h, c)) + e, c))
        if self.config.half_width:
            e2 = F.relu(self.stem2(x, c))  # 1/2
            d2 = F.relu(self.dec2(self._up2x(self.up2(d, c)) + e2, c))
            return torch.sigmoid(depth_to_space(self.out(d2, c), 2) + self.colour_gain * x)
        s = self.config.subpixel
        if s == 4:
            return depth_to_space(torch.sigmoid(self.out(d, c) + self.skip(x, c)), 4)
        y = self.out(d, c)
        if s == 2:
            y = depth_to_space(y, 2)
        # A flatten/unflatten round trip (no-op values): in the exported graph a 3-D tensor sits between
        # the conv and the Resize, so ONNX Runtime hands the 3 channels back from its blocked 8-channel
        # layout at 1/4 resolution and runs the Resize in plain NCHW, instead of resizing 8 blocked
        # channels at full resolution and reordering there. Measured at 640x480 (mosaic, 2 threads):
        # r=1.0 13.7 -> 12.6 ms, r=0.4 7.6 -> 6.4 ms, outputs equal within 2e-7.
        y = y.flatten(2).unflatten(2, y.shape[2:])
        # half-pixel bilinear upsampling by an integer factor (ONNX Resize; on the DLA only in recent
        # TensorRT releases, else a GPU fallback layer - not checked on a Jetson)
        y = F.interpolate(y, scale_factor=float(4 // s), mode="bilinear", align_corners=False)
        return torch.sigmoid(y + self.colour_gain * x)

    def _up2x(self, x: torch.Tensor) -> torch.Tensor:
        """Return x at twice the resolution (StudentConfig.upsample)."""
        if self.config.upsample == "nearest":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def flops(self, height: int, width: int, retention: float = 1.0) -> int:
        """Return the multiply-accumulates of one forward pass at height x width and this retention."""
        if height % 8 or width % 8 or height < 64 or width < 64:
            raise ValueError(f"height, width must be multiples of 8 and >= 64, got {height}x{width}")
        c = self.counts(retention)
        stem, h, w = self.stem.macs(height, width, c)
        total, h8, w8 = self.down.macs(h, w, c)
        total += stem + sum(b.conv_a.macs(h8, w8, c)[0] + b.conv_b.macs(h8, w8, c)[0] for b in self.res)
        total += sum(blk.macs(h8, w8, c) for blk in self.context)
        taps = 4 if self.config.upsample == "bilinear" else 0  # per upsampled value
        total += self.up.macs(h8, w8, c)[0] + taps * c["skip4"] * h * w + self.dec.macs(h, w, c)[0]
        if self.config.half_width:
            total += self.stem2.macs(height, width, c)[0] + self.up2.macs(h, w, c)[0]
            total += taps * c["skip2"] * (height // 2) * (width // 2)
            total += self.dec2.macs(height // 2, width // 2, c)[0] + self.out.macs(height // 2, width // 2, c)[0]
            return total + 3 * height * width * 2  # the colour gain and the add per output value
        total += self.out.macs(h, w, c)[0]
        if self.config.subpixel == 4:
            return total + self.skip.macs(height, width, c)[0]
        return total + 3 * height * width * 5  # bilinear taps (4) and the colour gain per output value

    def retention_per_stage(self, retention: float) -> list[float]:
        """Return the kept fraction of each stage's channels [skip4, stream, res..., dec4] at this retention."""
        c, groups = self.counts(retention), self.channel_groups()
        names = ["skip4", "stream"] + [f"res{i}" for i in range(len(self.res))] + ["dec4"]
        names += ["skip2", "dec2"] if self.config.half_width else []
        return [c[g] / groups[g] for g in names]


class FixedRetention(nn.Module):
    """Return student(x, retention) with retention baked in: the module ONNX export traces."""

    def __init__(self, student: Student, retention: float):
        super().__init__()
        self.student, self.retention = student, check_retention(retention)

    def forward(self, x):
        return self.student(x, self.retention)
