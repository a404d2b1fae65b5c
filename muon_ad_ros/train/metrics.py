"""Quality metrics: SSIM to content and style distance under a pretrained feature network.

SSIM is scikit-image's; the style distances are the two classic statistics of a style (Gatys' Gram
matrices, and the channel mean/std of AdaIN) computed on a frozen feature network from
train/features.py (or any callable returning {layer: (N,C,h,w)}), so a distance can be measured on
a network the student was not trained with.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .losses import PERIODIC_FLOOR, gram, luma, whitened_spectrum

FeatureFn = Callable[[torch.Tensor], dict]
KINDS = ("gram", "meanstd")


def _rgb(img: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        desc = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB image, got {desc}")
    return img


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Return the SSIM of two (H, W, 3) uint8 RGB images (reference resized to image's size if needed)."""
    from skimage.metrics import structural_similarity

    image, reference = _rgb(image, "image"), _rgb(reference, "reference")
    if reference.shape != image.shape:
        import cv2
        reference = cv2.resize(reference, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    return float(structural_similarity(image, reference, channel_axis=2, data_range=255))


def _tensor(img: np.ndarray, max_side: int) -> torch.Tensor:
    """Return a (1,3,H,W) float tensor in [0,1], scaled down so the longer side is <= max_side."""
    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s < 1.0:
        import cv2
        img = cv2.resize(img, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float() / 255


def _features(network) -> FeatureFn:
    if callable(network) and not isinstance(network, str):
        return network
    from .features import feature_network
    return feature_network(network)


@torch.no_grad()
def _image_features(image: np.ndarray, network: str | FeatureFn, max_side: int, name: str = "image") -> dict:
    return _features(network)(_tensor(_rgb(image, name), max_side))


class StyleReference:
    """A style image whose feature maps are computed once per (feature network, max_side): an eval measures
    every output against one style, and the style's features are the same for each of them."""

    def __init__(self, style: np.ndarray):
        self.image = np.array(_rgb(style, "style"), copy=True)
        self.image.flags.writeable = False   # the cached features stay those of this image
        self._features: dict = {}

    def features(self, network: str | FeatureFn, max_side: int) -> dict:
        """Return the style's {layer: features} under ``network`` at longer side <= ``max_side``."""
        key = (network, max_side)
        if key not in self._features:
            self._features[key] = _image_features(self.image, network, max_side, "style")
        return self._features[key]


def style_reference(style: np.ndarray | StyleReference) -> StyleReference:
    """Return style as a StyleReference (itself if it is one)."""
    return style if isinstance(style, StyleReference) else StyleReference(style)


def _check_kinds(kinds) -> None:
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _distance(fx: dict, fs: dict, kind: str) -> float:
    """Return the mean over fx's layers of the squared Gram (or mean/std) gap between fx and fs."""
    total = 0.0
    for layer, a in fx.items():
        b = fs[layer]
        if kind == "gram":
            total += float((gram(a) - gram(b)).pow(2).mean())
        else:
            gap = (a.mean((2, 3)) - b.mean((2, 3))).pow(2) + (a.std((2, 3)) - b.std((2, 3))).pow(2)
            total += float(gap.mean())
    return total / max(1, len(fx))


def style_distance(image: np.ndarray, style: np.ndarray | StyleReference, network: str | FeatureFn = "multistyle26",
                   kind: str = "gram", max_side: int = 384) -> float:
    """Return the style distance of image to style: mean over layers of the squared Gram (or mean/std) gap.

    `network`: a train/features.py network name or a callable x -> {layer: features}. `style`: the image, or a
    StyleReference that keeps its features for the next call.
    """
    _check_kinds((kind,))
    return _distance(_image_features(image, network, max_side), style_reference(style).features(network, max_side),
                     kind)


def style_distances(image: np.ndarray, style: np.ndarray | StyleReference, networks=("mobilenet_v2", "multistyle26"),
                    kinds=KINDS, max_side: int = 384) -> dict[str, float]:
    """Return {'<network>/<kind>': distance} for every network and statistic (one pass of the image through each
    network serves every statistic; `style` as in style_distance)."""
    _check_kinds(kinds)
    style = style_reference(style)
    out = {}
    for n in networks:
        fx, fs = _image_features(image, n, max_side), style.features(n, max_side)
        out.update({f"{n}/{k}": _distance(fx, fs, k) for k in kinds})
    return out


def lattice_pattern(y: torch.Tensor, period: int = 8) -> torch.Tensor:
    """Return the (N, C, period, period) pattern that repeats on the image's period-px lattice: the mean of
    the high-passed image (minus its period x period box mean, which holds no part of such a pattern) over
    every lattice cell, less its own mean. A network with strides paints its texture locked to that
    lattice; a photograph has next to none (the held-out photos: RMS 0.2/255 at period 8). Differentiable:
    the distillation's lattice penalty is its mean square."""
    p = period
    if y.ndim != 4 or min(y.shape[-2:]) < 3 * p:
        raise ValueError(f"lattice_pattern needs (N, C, H, W) with H, W >= {3 * p}, got {tuple(y.shape)}")
    # low[i] = mean of y[i:i+p], as two 1-D box means (a p x p window costs p times more on the CPU)
    low = F.avg_pool2d(F.avg_pool2d(y, (p, 1), stride=1), (1, p), stride=1)
    high = y[..., p // 2:, p // 2:][..., :low.shape[-2], :low.shape[-1]] - low   # high[i] is y[i + p/2]
    high = high[..., p - p // 2:, p - p // 2:]              # from y index p: lattice phase 0
    nh, nw = high.shape[-2] // p, high.shape[-1] // p
    cells = high[..., :nh * p, :nw * p].unflatten(-1, (nw, p)).unflatten(-3, (nh, p))   # N C nh p nw p
    pattern = cells.mean(dim=(-4, -2))
    return pattern - pattern.mean(dim=(-2, -1), keepdim=True)


def lattice_rms(image: np.ndarray, period: int = 8) -> float:
    """Return the RMS (0-255) of an (H, W, 3) uint8 image's lattice_pattern: the fixed grid a strided
    network lays over every frame (the nearest-upsampling starry_night student: 8.0 at period 8, 640x480)."""
    x = torch.from_numpy(_rgb(image, "image").astype(np.float32)).permute(2, 0, 1)[None]
    return float(lattice_pattern(x, period).pow(2).mean().sqrt())


def periodic_peak(image: np.ndarray, periods: tuple[float, float] = (6.0, 40.0)) -> tuple[float, float]:
    """Return (strength, period in px) of the strongest periodic component of an (H, W, 3) uint8 image's
    luminance with a period in ``periods``: the peak of losses.whitened_spectrum averaged over 3x3
    neighbouring frequencies (a pattern whose phase drifts over the frame spreads over a few). A check pattern
    of 8-px squares peaks at a period near 11 px; photographs without a repeating structure measure 7-15, a
    fence or a lattice over 100. Unlike lattice_pattern it does not need the pattern locked to a fixed grid."""
    x = torch.from_numpy(_rgb(image, "image").astype(np.float64)).permute(2, 0, 1)[None]
    white, radius = whitened_spectrum(luma(x), periods)
    white, radius = torch.fft.fftshift(white[0]), torch.fft.fftshift(radius)   # neighbours across 0 are neighbours
    smooth = sum(torch.roll(white, (dy, dx), (0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    i = int(torch.argmax(smooth))
    return float(smooth.flatten()[i]), float(1 / radius.flatten()[i])


def periodic_excess(out: np.ndarray, content: np.ndarray, content_peak: float | None = None) -> float:
    """Return out's periodic_peak over the photo's (floored at PERIODIC_FLOOR): how much stronger a repeating
    pattern the output carries than its photograph. A photo's own fence or lattice raises its floor, so a
    style that keeps the fence is not counted; a check of 8-px squares over smooth surfaces and fur (a
    starry_night model) measured about 5 on average over the held-out photos. ``content_peak``: the strength
    of periodic_peak(content) when the caller has it already (an eval measures several outputs of a photo)."""
    if content_peak is None:
        content_peak = periodic_peak(content)[0]
    return periodic_peak(out)[0] / max(content_peak, PERIODIC_FLOOR)


def border_gap(image: np.ndarray, outer: int = 4, inner: tuple[int, int] = (8, 16)) -> float:
    """Return the largest gap (0-255, over the four sides and the colour channels) between the mean colour
    of the outer ``outer``-px strip and of the strip ``inner`` px in: a frame drawn along the border shows
    as a gap the input photo does not have."""
    img = _rgb(image, "image").astype(np.float32)
    gaps = []
    for side in range(4):
        a = np.rot90(img, side)
        gaps.append(np.abs(a[:outer].mean(axis=(0, 1)) - a[inner[0]:inner[1]].mean(axis=(0, 1))).max())
    return float(max(gaps))
