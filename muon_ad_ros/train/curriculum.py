"""The three-phase training curriculum (METHOD.md section 5), with iteration counts scaled to the run length.

The paper's phases for 3000 iterations: I 0-500, II 500-1500, III 1500-3000; a run of T iterations uses
the same fractions (1/6, 1/2). The controller is a plain object: the training loop asks it, once per step,
for the loss weight, the mask threshold, the lr factor and whether style parameters are frozen, and feeds
it the validation metric.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PAPER_TOTAL = 3000
PAPER_BOUNDS = (500, 1500)


@dataclass
class PhaseState:
    """What the curriculum prescribes at one step."""
    phase: int  # 1, 2 or 3
    tau_k: float  # mask threshold tau = mu + tau_k * sigma of the channel scores
    lambda_style: float  # weight of the AD style loss
    lr_factor: float  # multiplies the optimizer's base learning rates
    freeze_style: bool  # phase III: style parameters frozen
    balance_gamma: float | None  # phase III: rescale |g_style| to gamma * |g_content|

    def as_dict(self) -> dict:
        """Return the state as a plain dict (for logs)."""
        return asdict(self)


class Curriculum:
    """Phase I: tau = mu - 1.5 sigma, lambda_style 0.8, fixed lr; II: lambda_style adapts to the validation
    metric's trend, tau = mu + 0.5 sigma; III: tau = mu + 1.2 sigma, style parameters frozen, gradient-norm
    balancing, lr decays 10x (1e-3 -> 1e-4 in the paper)."""

    TAU_K = {1: -1.5, 2: 0.5, 3: 1.2}

    def __init__(self, total: int, lambda_style: float = 0.8, eta: float = 0.5, gamma: float = 1.0,
                 final_lr_factor: float = 0.1, lambda_bounds: tuple[float, float] = (0.2, 1.0), enabled: bool = True):
        if total < 1:
            raise ValueError(f"total iterations must be >= 1, got {total}")
        self.total, self.eta, self.gamma, self.final_lr_factor = total, eta, gamma, final_lr_factor
        self.lambda_bounds, self.enabled = lambda_bounds, enabled
        self.bounds = tuple(round(b * total / PAPER_TOTAL) for b in PAPER_BOUNDS)
        self.lambda_style = self.initial_lambda = lambda_style
        self.last_metric: float | None = None

    def phase(self, step: int) -> int:
        """Return the phase (1, 2, 3) of iteration ``step`` (0-based)."""
        if step < self.bounds[0]:
            return 1
        return 2 if step < self.bounds[1] else 3

    def lr_factor(self, step: int) -> float:
        """Return the lr multiplier: 1 in phases I-II, then a cosine decay to final_lr_factor in phase III."""
        if not self.enabled or self.phase(step) < 3:
            return 1.0
        span = max(1, self.total - self.bounds[1])
        t = min(1.0, (step - self.bounds[1]) / span)
        return self.final_lr_factor + (1 - self.final_lr_factor) * 0.5 * (1 + math.cos(math.pi * t))

    def observe(self, step: int, metric: float) -> float:
        """Feed a validation metric (lower is better); return lambda_style.

        Phase II: lambda_style(t) = lambda_style(t-1) * exp(-eta * delta_metric), delta_metric the relative
        improvement since the last observation: while the style metric improves, weight moves to content.
        """
        if self.enabled and self.phase(step) == 2 and self.last_metric is not None and self.last_metric > 0:
            delta = (self.last_metric - metric) / self.last_metric
            lo, hi = self.lambda_bounds
            self.lambda_style = min(hi, max(lo, self.lambda_style * math.exp(-self.eta * delta)))
        self.last_metric = metric
        return self.lambda_style

    def state(self, step: int) -> PhaseState:
        """Return what the curriculum prescribes at iteration ``step``."""
        if not self.enabled:
            return PhaseState(0, 0.0, self.initial_lambda, 1.0, False, None)
        p = self.phase(step)
        return PhaseState(p, self.TAU_K[p], self.lambda_style, self.lr_factor(step), p == 3,
                          self.gamma if p == 3 else None)

    def state_dict(self) -> dict:
        """Return the mutable state (for checkpoints)."""
        return {"lambda_style": self.lambda_style, "last_metric": self.last_metric}

    def load_state_dict(self, d: dict) -> None:
        """Restore the mutable state from ``state_dict()``."""
        self.lambda_style, self.last_metric = d["lambda_style"], d["last_metric"]
