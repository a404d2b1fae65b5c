"""Gradient conflict projection, the paper's Eq. 2: a one-sided PCGrad (METHOD.md section 3)."""
from __future__ import annotations

import torch

COS_THRESHOLD = -0.5


def flat(grads) -> torch.Tensor:
    """Return one flat vector of a list of gradients (None counts as zeros is not allowed: pass zeros)."""
    return torch.cat([g.reshape(-1) for g in grads])


def project_conflict(g_style: torch.Tensor, g_content: torch.Tensor,
                     threshold: float = COS_THRESHOLD) -> tuple[torch.Tensor, bool]:
    """Return (g_style', projected?): when cos(g_style, g_content) < threshold, g_style loses its g_content part.

    g_style' = g_style - (<g_style, g_content> / |g_content|^2) g_content; g_content is never changed
    (PCGrad would project both ways, and whenever the dot product is negative).
    """
    if g_style.shape != g_content.shape:
        raise ValueError(f"gradients differ in shape: {tuple(g_style.shape)} vs {tuple(g_content.shape)}")
    dot = torch.dot(g_style.flatten(), g_content.flatten())
    norms = g_style.norm() * g_content.norm()
    if norms == 0 or dot / norms >= threshold:
        return g_style, False
    return g_style - dot / g_content.flatten().dot(g_content.flatten()) * g_content, True


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Return the cosine similarity of two gradient vectors (0 when either is zero)."""
    n = float(a.norm() * b.norm())
    return float(torch.dot(a.flatten(), b.flatten())) / n if n > 0 else 0.0
