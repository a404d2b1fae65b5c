"""Offline per-image Muon-AD: optimize the image itself with the AD loss and Muon updates (METHOD.md sections 1-2).

The slow, highest-quality path (the paper's ~10 s/image on a Jetson GPU; minutes on 2 CPU cores). The image
is optimized through a space-to-depth latent (pixel-unshuffle by 4: 48 channels x H*W/16 pixels), so the
Newton-Schulz step orthogonalizes a 48-row matrix instead of a degenerate 3-row one.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .distill import DEVICES, resolve_device
from .features import TRAINING_NETWORK, feature_network
from .losses import FORMS, AttentionDistillation
from .muon import muon_update_image

UNSHUFFLE = 4


def stylize_image(content: np.ndarray, style: np.ndarray, iters: int = 200, lr: float = 0.02,
                  optimizer: str = "muon", max_side: int = 384, form: str = "ad_l1",
                  content_weight: float = 0.25, network: str = TRAINING_NETWORK, seed: int = 0,
                  tv_weight: float = 3.0, callback=None, device="cpu") -> np.ndarray:
    """Return the stylized (H', W', 3) uint8 image (content scaled to max_side, sides multiples of 8).

    ``optimizer`` 'muon' (muon_update_image on the unshuffled latent) or 'adam' (AD's original choice).
    ``tv_weight`` weights a total-variation term (not in METHOD.md): without it the optimized pixels pick up
    high-frequency noise that the stride-8/16 feature layers do not see. ``callback(step, losses)`` is
    called after every step if given. ``device`` is where the optimization runs (a torch device or name).
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    if optimizer not in ("muon", "adam"):
        raise ValueError(f"optimizer must be 'muon' or 'adam', got {optimizer!r}")
    torch.manual_seed(seed)
    device = torch.device(device)
    c = data.to_tensor(data.resize_max(data.to_rgb(content), max_side, 8 * UNSHUFFLE)).to(device)
    s = data.to_tensor(data.resize_max(data.to_rgb(style), max_side, 8)).to(device)
    loss_fn = AttentionDistillation(feature_network(network).to(device), s, form=form, content_weight=content_weight)
    z = F.pixel_unshuffle(c, UNSHUFFLE).clone().requires_grad_(True)
    momentum = torch.zeros_like(z)
    adam = torch.optim.Adam([z], lr=lr) if optimizer == "adam" else None
    for step in range(iters):
        x = F.pixel_shuffle(z, UNSHUFFLE).clamp(0, 1)
        losses = loss_fn(x, c)
        tv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
        grad, = torch.autograd.grad(losses["total"] + tv_weight * tv, z)
        with torch.no_grad():
            if adam is None:
                muon_update_image(z, grad, momentum, lr)
            else:
                z.grad = grad
                adam.step()
            z.clamp_(0, 1)
        if callback is not None:
            callback(step, {k: v.item() for k, v in losses.items()})
    return data.to_uint8(F.pixel_shuffle(z, UNSHUFFLE))


def main(argv=None) -> int:
    """`muon-ad stylize`: per-image Muon-AD optimization; returns the exit status."""
    p = argparse.ArgumentParser(prog="muon-ad stylize", description=__doc__.splitlines()[0])
    p.add_argument("--content", required=True, help="content image file")
    p.add_argument("--style", required=True, help="style image file or a bundled style name "
                   f"({', '.join(sorted(data.STYLES))})")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--optimizer", choices=("muon", "adam"), default="muon")
    p.add_argument("--max-side", type=int, default=384, help="longer side of the optimized image")
    p.add_argument("--loss", choices=FORMS, default="ad_l1")
    p.add_argument("--content-weight", type=float, default=0.25)
    p.add_argument("--tv-weight", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when torch sees a GPU, else the CPU")
    a = p.parse_args(argv)
    try:
        device = resolve_device(a.device)
    except ValueError as exc:
        p.error(str(exc))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from tqdm import tqdm
    bar = tqdm(total=a.iters, desc="stylize", unit="it")

    def progress(step, losses):
        bar.update(1)
        bar.set_postfix(loss=f"{losses['total']:.4f}")

    t = time.perf_counter()
    out = stylize_image(data.load_image(a.content), data.style_image(a.style)[0], a.iters, a.lr, a.optimizer,
                        a.max_side, a.loss, a.content_weight, seed=a.seed, tv_weight=a.tv_weight,
                        callback=progress, device=device)
    bar.close()
    data.save_image(a.out, out)
    print(f"wrote {a.out} ({out.shape[1]}x{out.shape[0]}) on {device} in {time.perf_counter() - t:.1f} s")
    return 0
