"""Attention distillation (AD) and content losses on a frozen feature network (METHOD.md section 1).

Tokens are feature-map pixels (N = h*w tokens of dimension d = channels); Q, K and V are identity
projections of the features (METHOD.md allows fixed or identity projections).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .features import FeatureNetwork

FORMS = ("ad_l1", "kl")


def tokens(f: torch.Tensor) -> torch.Tensor:
    """Return (N, h*w, C) tokens of an (N, C, h, w) feature map."""
    return f.flatten(2).transpose(1, 2)


def attention_weights(q: torch.Tensor, k: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Return softmax(s * Q K^T / sqrt(d)), shape (N, Nq, Nk)."""
    return torch.softmax(scale * q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Return softmax(s * Q K^T / sqrt(d)) V."""
    return attention_weights(q, k, scale) @ v


def ad_l1(gen: torch.Tensor, style_kv: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Return mean|O(gen) - stopgrad(softmax(s Q_gen K_style^T / sqrt d) V_style)|, O(gen) = self-attention of gen."""
    q = tokens(gen)
    kv = style_kv.expand(q.shape[0], -1, -1)
    with torch.no_grad():  # the target is a constant: no graph through the style attention
        target = attention(q, kv, kv, scale)
    return (attention(q, q, q) - target).abs().mean()


def ad_kl(gen: torch.Tensor, style_kv: torch.Tensor, style_marginal: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Return KL(Attn(style) || Attn(gen)) over the style's keys.

    The paper writes the KL form without shapes; here both sides are distributions over the same style
    tokens: how much attention each style key receives from the style's own queries (``style_marginal``,
    precomputed) and from the generated image's queries. It matches the generated token statistics to the
    style's, like a soft histogram over the style's token vocabulary.
    """
    q = tokens(gen)
    gen_marginal = attention_weights(q, style_kv.expand(q.shape[0], -1, -1), scale).mean(dim=1)
    p = style_marginal.expand_as(gen_marginal)
    return (p * (torch.log(p + 1e-8) - torch.log(gen_marginal + 1e-8))).sum(dim=-1).mean()


def channel_stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the per-image channel means and standard deviations, each (N, C), of an (N, C, h, w) map."""
    flat = f.flatten(2)
    return flat.mean(dim=-1), flat.std(dim=-1, unbiased=False)


def stats_loss(gen: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Return mean|mu(gen) - mu_style| + mean|sigma(gen) - sigma_style| over channels, both divided by the
    style's mean channel std so layers of different magnitude weigh alike (the AdaIN style loss of Huang &
    Belongie 2017 in L1; not in METHOD.md). The AD loss matches local token neighbourhoods at strides 8
    and 16; these first and second moments carry the global palette, which it left unmatched."""
    mean, std = channel_stats(gen)
    norm = style_std.mean().clamp_min(1e-6)
    return ((mean - style_mean).abs().mean() + (std - style_std).abs().mean()) / norm


def gram(f: torch.Tensor) -> torch.Tensor:
    """Return the (N, C, C) Gram matrices of (N, C, h, w) features, normalized by h*w."""
    n, c, h, w = f.shape
    x = f.reshape(n, c, h * w)
    return x @ x.transpose(1, 2) / (h * w)


def gram_loss(gen: torch.Tensor, style_gram: torch.Tensor) -> torch.Tensor:
    """Return the mean squared gap between the Gram matrices of gen (N, C, h, w) and the (1, C, C) style's
    (Gatys et al.'s style loss; metrics.style_distance measures the same on held-out photos)."""
    return (gram(gen) - style_gram).pow(2).mean()


def colour_directions(k: int = 32, seed: int = 0) -> torch.Tensor:
    """Return (k, 3) unit vectors in RGB space: the three axes, then k - 3 fixed random directions."""
    g = torch.Generator().manual_seed(seed)
    d = torch.cat([torch.eye(3), torch.randn(max(0, k - 3), 3, generator=g)])[:k]
    return d / d.norm(dim=1, keepdim=True)


def colour_quantiles(pixels: torch.Tensor, directions: torch.Tensor, q: int = 256) -> torch.Tensor:
    """Return the (q, k) quantiles, at (i + 0.5) / q, of (P, 3) pixels projected on each of the k directions."""
    proj = pixels @ directions.T                                    # P k
    at = ((torch.arange(q, device=proj.device) + 0.5) / q * proj.shape[0]).long().clamp_max(proj.shape[0] - 1)
    return proj.sort(dim=0).values[at]


def colour_loss(image: torch.Tensor, style_q: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Return the sliced Wasserstein-1 distance between the colours of (N, 3, h, w) images, each on its own,
    and the style's (colour_quantiles of its pixels): the mean |quantile gap| over the projections.
    The channel mean/std loss is met by one tint over the whole frame; this term asks for the style's
    whole colour distribution (Heitz et al. 2021, sliced Wasserstein loss, here on the pixels only)."""
    px = image.flatten(2).transpose(1, 2)                           # N P 3
    return torch.stack([(colour_quantiles(p, directions, style_q.shape[0]) - style_q).abs().mean()
                        for p in px]).mean()


LUMA = (0.299, 0.587, 0.114)
PERIODIC_FLOOR = 15.0   # whitened spectral peak of the held-out photographs without a repeating structure: 7-15


def ring_medians(values: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
    """Return the (N, R) median (torch.median's: the lower of the two middle values) of each row of (N, P)
    values over the pixels of each ring, ``ring`` the (P,) ring index of each pixel (R = its largest + 1).
    One sort of every row serves all the rings: sorted by value, then stably by ring, each ring's values lie
    together and ascending, its median at a known place. A ring without pixels gets another ring's value."""
    counts = torch.bincount(ring)
    starts = counts.cumsum(0) - counts
    by_value = values.argsort(dim=1)
    by_ring = ring[by_value].argsort(dim=1, stable=True)
    ordered = values.gather(1, by_value.gather(1, by_ring))
    return ordered[:, (starts + (counts - 1).div(2, rounding_mode="floor")).clamp_min(0)]


def whitened_spectrum(gray: torch.Tensor, periods: tuple[float, float] = (6.0, 40.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ((N, H, W) whitened power spectrum, (H, W) frequency radius in cycles/px) of (N, H, W) images:
    the Hann-windowed power at each frequency whose period lies in ``periods``, divided by the median power
    of its ring (held constant for the gradient), 0 outside the band. A photograph's power falls off with
    frequency alike in every direction, so its whitened spectrum is flat; a repeating pattern is a peak."""
    n, h, w = gray.shape
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=gray.dtype, device=gray.device),
                      torch.hann_window(w, periodic=False, dtype=gray.dtype, device=gray.device))
    power = torch.fft.fft2((gray - gray.mean(dim=(-2, -1), keepdim=True)) * win).abs().pow(2)
    fy, fx = torch.fft.fftfreq(h, device=gray.device), torch.fft.fftfreq(w, device=gray.device)
    radius = torch.hypot(fy[:, None], fx[None, :]).to(gray.dtype)
    band = (radius >= 1 / periods[1]) & (radius <= 1 / periods[0])
    ring = torch.round(radius * max(h, w)).long()
    # the medians of the rings that reach into the band (over all their pixels): a tenth of the spectrum to sort
    reach = torch.isin(ring, ring[band])
    median = ring_medians(power.detach()[:, reach], ring[reach]).clamp_min(1e-20)
    white = torch.where(band, power / median[:, ring.clamp_max(median.shape[1] - 1)], 0.0)
    return white, radius


def luma(x: torch.Tensor) -> torch.Tensor:
    """Return the (N, H, W) luminance of (N, 3, H, W) RGB images."""
    return torch.einsum("nchw,c->nhw", x, torch.tensor(LUMA, dtype=x.dtype, device=x.device))


def periodic_penalty(y: torch.Tensor, x: torch.Tensor, threshold: float = PERIODIC_FLOOR) -> torch.Tensor:
    """Return the mean over the batch of the summed log-excess of y's whitened spectrum over the photo x's
    (floored at ``threshold``): zero unless the output carries a repeating pattern (periods 6-40 px) stronger
    than threshold and than the photo's own, whatever the pattern's phase. Per-frequency whitened power of a
    photograph is ~1 (exponentially distributed), so a threshold of 15 leaves its noise alone."""
    wy, _ = whitened_spectrum(luma(y))
    with torch.no_grad():
        wx, _ = whitened_spectrum(luma(x))
    excess = torch.relu(torch.log(wy.clamp_min(1e-20)) - torch.log(wx.clamp_min(threshold)))
    return excess.sum(dim=(-2, -1)).mean()


def content_loss(gen: dict, content: dict, layers: tuple[str, ...]) -> torch.Tensor:
    """Return sum_l mean|Q_l(gen) - stopgrad(Q_l(content))| (AD's content form)."""
    return sum((gen[l] - content[l].detach()).abs().mean() for l in layers)


def total_loss(style: torch.Tensor, content: torch.Tensor, content_weight: float = 0.25) -> torch.Tensor:
    """Return L = L_AD + lambda * L_content (lambda 0.25 for style transfer, 0 for texture)."""
    return style + content_weight * content


def _inner(f: torch.Tensor, border: int) -> torch.Tensor:
    """Return the feature map without ``border`` pixels on each side (unchanged if that would empty it)."""
    if border <= 0 or min(f.shape[-2:]) <= 2 * border:
        return f
    return f[..., border:-border, border:-border]


class AttentionDistillation(torch.nn.Module):
    """AD loss against fixed style images: keys/values of all style images concatenated on the token axis.

    ``style`` is an (S,3,H,W) batch or a list of (1,3,H,W) images of different sizes. ``border`` feature
    pixels are dropped from the style's tokens: zero padding makes border tokens special, and the
    near-nearest-neighbour AD target would otherwise copy the style's corners into the output's corners.

    ``image_pad`` > 0: generated and content images are mirrored outwards by that many pixels before the
    feature network, and the feature pixels that cover only the mirrored ring are dropped (``features``).
    Every image pixel, the border included, is then seen by tokens whose receptive field holds image
    content rather than the network's zero padding, so the border is trained like the interior;
    ``gen_border`` (the alternative: leave the border tokens out of the style loss) leaves the border
    pixels free, and the zero-padded students painted a frame there.
    """

    def __init__(self, network: FeatureNetwork, style, form: str = "ad_l1",
                 style_layers: tuple[str, ...] | None = None, content_layers: tuple[str, ...] | None = None,
                 content_weight: float = 0.25, scale: float = 1.0, border: int = 1, gen_border: int = 0,
                 stats_layers: tuple[str, ...] = (), stats_weight: float = 0.0, image_pad: int = 0,
                 gram_weight: float = 0.0, colour_weight: float = 0.0):
        super().__init__()
        self.image_pad = image_pad
        if form not in FORMS:
            raise ValueError(f"loss form must be one of {FORMS}, got {form!r}")
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        for s in styles:
            if s.ndim != 4 or s.shape[1] != 3:
                raise ValueError(f"style must be (S,3,H,W) image batches, got shape {tuple(s.shape)}")
        self.network, self.form, self.scale, self.content_weight = network, form, scale, content_weight
        self.gen_border = gen_border
        self.style_layers = tuple(style_layers or network.layers)
        self.content_layers = tuple(content_layers or network.layers[-1:])
        self.stats_layers, self.stats_weight = tuple(stats_layers) if stats_weight else (), stats_weight
        missing = set(self.style_layers + self.content_layers + self.stats_layers) - set(network.layers) - {"rgb"}
        if missing:
            raise ValueError(f"layers {sorted(missing)} are not computed by feature network {network.name} "
                             f"(it computes {network.layers})")
        with torch.no_grad():
            feats = [network(s) for s in styles]
        self.style_kv = {l: torch.cat([tokens(_inner(f[l], border)).reshape(1, -1, f[l].shape[1]) for f in feats],
                                      dim=1) for l in self.style_layers}
        self.style_marginal = {l: attention_weights(kv, kv, scale).mean(dim=1) for l, kv in self.style_kv.items()}
        # moments over all style views' pixels together ("rgb" = the image itself)
        self.style_stats = {}
        for l in self.stats_layers:
            maps = [s if l == "rgb" else f[l] for s, f in zip(styles, feats)]
            t = torch.cat([tokens(_inner(m, 0 if l == "rgb" else border)).reshape(-1, m.shape[1]) for m in maps])
            self.style_stats[l] = (t.mean(dim=0), t.std(dim=0, unbiased=False))
        # the style's colour distribution over all its views' pixels, for the sliced Wasserstein colour term
        self.colour_weight = colour_weight
        if colour_weight:
            self.register_buffer("colour_dirs", colour_directions().to(styles[0].device))
            pixels = torch.cat([s.flatten(2).transpose(1, 2).reshape(-1, 3) for s in styles])
            self.register_buffer("style_colour_q", colour_quantiles(pixels, self.colour_dirs))
        # Gram matrices of the style layers, averaged over the style views (each normalized by its pixels)
        self.gram_weight = gram_weight
        self.style_gram = {l: torch.stack([gram(_inner(f[l], border)) for f in feats]).mean(dim=0)
                           for l in self.style_layers} if gram_weight else {}

    def style_loss(self, gen_feats: dict, image: torch.Tensor | None = None) -> torch.Tensor:
        """Return the AD style loss summed over the style layers, plus ``stats_weight`` times the moment
        loss of the stats layers (``image``, the generated image, is needed for the "rgb" layer),
        ``gram_weight`` times the Gram loss of the style layers and ``colour_weight`` times colour_loss."""
        gen = {l: _inner(gen_feats[l], self.gen_border) for l in self.style_layers}
        if self.form == "ad_l1":
            loss = sum(ad_l1(gen[l], self.style_kv[l], self.scale) for l in self.style_layers)
        else:
            loss = sum(ad_kl(gen[l], self.style_kv[l], self.style_marginal[l], self.scale) for l in self.style_layers)
        for l in self.stats_layers:
            if l == "rgb" and image is None:
                raise ValueError("the 'rgb' stats layer needs the generated image")
            # the border is left out as in the AD term (8 image pixels per feature pixel for "rgb"): with the
            # whole image the student met the colour moments with a coloured frame (seen at 600 steps)
            f = _inner(image, 8 * self.gen_border) if l == "rgb" else _inner(gen_feats[l], self.gen_border)
            loss = loss + self.stats_weight * stats_loss(f, *self.style_stats[l])
        if self.gram_weight:
            loss = loss + self.gram_weight * sum(gram_loss(gen[l], self.style_gram[l])
                                                 for l in self.style_layers)
        if self.colour_weight:
            if image is None:
                raise ValueError("the colour term needs the generated image")
            loss = loss + self.colour_weight * colour_loss(_inner(image, 8 * self.gen_border), self.style_colour_q,
                                                           self.colour_dirs)
        return loss

    def features(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the feature maps of ``img``; with ``image_pad`` of the mirrored image, the ring that covers
        only the mirrored pixels cut off (pad * feature size / padded size feature pixels per side)."""
        p = self.image_pad
        if p <= 0:
            return self.network(img)
        padded = F.pad(img, (p, p, p, p), mode="reflect")
        feats = self.network(padded)
        out = {}
        for name, f in feats.items():
            ring = round(p * f.shape[-1] / padded.shape[-1])
            out[name] = f[..., ring:f.shape[-2] - ring, ring:f.shape[-1] - ring] if ring else f
        return out

    def forward(self, gen: torch.Tensor, content: torch.Tensor, gen_feats: dict | None = None) -> dict[str, torch.Tensor]:
        """Return {'style', 'content', 'total'} losses of generated images against their content images
        (``gen_feats``: features(gen) when the caller has them already)."""
        gen_feats = self.features(gen) if gen_feats is None else gen_feats
        with torch.no_grad():
            content_feats = self.features(content)
        s = self.style_loss(gen_feats, gen)
        c = content_loss(gen_feats, content_feats, self.content_layers)
        return {"style": s, "content": c, "total": total_loss(s, c, self.content_weight)}
