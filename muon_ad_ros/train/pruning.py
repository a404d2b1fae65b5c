"""Dynamic pruning (METHOD.md section 4): channel importance, the tau rule and the retention schedule.

The student (model/student.py) runs a retention r by slicing the first ceil(r*C) channels of each group;
this module decides the ORDER of those channels (importance scores). METHOD.md's entropy layer gate and
head selection have no counterpart: the student's global-context blocks have no attention to measure
(model/student.py says why).
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

WINDOW = 100
LAMBDA_DECAY = 0.03
RETENTION_START, RETENTION_END = 0.95, 0.40


def prune_mask(scores: torch.Tensor, k: float) -> torch.Tensor:
    """Return the keep mask S >= tau, tau = mu(S) + k * sigma(S) over one layer's channel scores."""
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    tau = s.mean() + k * (s.std(unbiased=False) if s.numel() > 1 else 0.0)
    return s >= tau


def retention_schedule(step: int, total: int, start: float = RETENTION_START, end: float = RETENTION_END) -> float:
    """Return the channel retention at ``step``: linear from ``start`` (95%) to ``end`` (40%) over ``total``."""
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    t = min(1.0, max(0.0, step / max(1, total - 1)))
    return start + (end - start) * t


class ChannelImportance:
    """S = |grad W| / (sqrt(E[grad W^2]) + eps) + lambda_decay * W^2, E over a sliding window of steps.

    Scores are computed per weight element, then averaged over each channel group member's elements
    (the student's ``channel_params()`` says where the members sit).
    """

    def __init__(self, student, window: int = WINDOW, lambda_decay: float = LAMBDA_DECAY, eps: float = 1e-8):
        self.groups = student.channel_params()
        self.window, self.lambda_decay, self.eps = window, lambda_decay, eps
        self.params = {id(p): p for entries in self.groups.values() for p, _, _ in entries}
        self.history: dict[int, deque] = {k: deque(maxlen=window) for k in self.params}
        self.last_grad: dict[int, torch.Tensor] = {}

    def update(self) -> None:
        """Record the current gradients (call after backward, before the optimizer zeroes them)."""
        for k, p in self.params.items():
            if p.grad is not None:
                g = p.grad.detach().clone()
                self.last_grad[k] = g
                self.history[k].append(g * g)

    def element_scores(self, p: torch.Tensor) -> torch.Tensor:
        """Return S for every element of parameter ``p`` (zeros before the first update)."""
        k = id(p)
        if k not in self.last_grad:
            return torch.zeros_like(p)
        mean_sq = torch.stack(list(self.history[k])).mean(0)
        return self.last_grad[k].abs() / (mean_sq.sqrt() + self.eps) + self.lambda_decay * p.detach() ** 2

    def scores(self) -> dict[str, torch.Tensor]:
        """Return {group: one score per member}, ready for ``Student.reorder_channels``."""
        out = {}
        for name, entries in self.groups.items():
            total = None
            for p, dim, block in entries:
                s = self.element_scores(p).movedim(dim, 0)
                s = s.reshape(s.shape[0] // block, -1).mean(1)
                total = s if total is None else total + s
            out[name] = total / len(entries)
        return out

    def threshold_retention(self, k: float) -> float:
        """Return the mean fraction of members that tau = mu + k sigma would keep, over all groups."""
        fractions = [float(prune_mask(s, k).double().mean()) for s in self.scores().values()]
        return float(np.mean(fractions)) if fractions else 1.0
