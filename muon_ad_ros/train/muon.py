"""Muon: orthogonalized Nesterov momentum for matrix parameters, AdamW for the rest (METHOD.md section 2).

In the style of KellerJordan/Muon: one Newton-Schulz function, one optimizer class. Hidden weights
(conv kernels viewed as out x in*kh*kw) take the orthogonalized update; biases, norms and the first and
last layers go to AdamW through param groups flagged ``use_muon=False``. ``muon_update_image`` applies the
same update to an image or latent viewed as channels x pixels (the paper's per-image optimization).
"""
from __future__ import annotations

import math

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
SCALINGS = ("original", "rms")


def zeropower_via_newtonschulz5(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Return NS5(G), an approximately orthogonal matrix with G's singular vectors (singular values ~[0.7, 1.2])."""
    if G.ndim != 2:
        raise ValueError(f"Newton-Schulz needs a 2-D matrix, got shape {tuple(G.shape)}")
    a, b, c = NS_COEFFICIENTS
    X = G.float()
    transposed = X.size(0) > X.size(1)
    if transposed:  # iterate on the smaller Gram matrix
        X = X.T
    X = X / (X.norm() + eps)  # Frobenius norm bounds the spectral norm, so singular values start in (0, 1]
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return (X.T if transposed else X).to(G.dtype)


def update_scale(shape: tuple[int, ...], scaling: str) -> float:
    """Return the factor for an orthogonalized update of a (rows, cols) matrix: Keller's or Moonlight's RMS match."""
    rows, cols = shape[0], math.prod(shape[1:])
    if scaling == "original":
        return math.sqrt(max(1.0, rows / cols))
    if scaling == "rms":  # Moonlight: update RMS ~0.2, like AdamW's, so AdamW's lr and wd carry over
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")


def muon_update(grad: torch.Tensor, momentum: torch.Tensor, beta: float = 0.95, nesterov: bool = True,
                ns_steps: int = 5) -> torch.Tensor:
    """Return the orthogonalized (unscaled) update for one matrix parameter; updates ``momentum`` in place."""
    momentum.lerp_(grad, 1 - beta)  # M = beta M + (1 - beta) g
    u = grad.lerp(momentum, beta) if nesterov else momentum  # U = (1 - beta) g + beta M
    return zeropower_via_newtonschulz5(u.reshape(u.size(0), -1), ns_steps).view_as(grad)


class Muon(torch.optim.Optimizer):
    """Muon for groups with ``use_muon=True``, AdamW for groups with ``use_muon=False`` (see ``muon_param_groups``)."""

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.0, scaling: str = "original", ns_steps: int = 5,
                 adam_lr: float = 3e-4, adam_betas: tuple[float, float] = (0.9, 0.95), adam_eps: float = 1e-8,
                 adam_weight_decay: float = 0.0):
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        if lr < 0 or adam_lr < 0:
            raise ValueError(f"learning rates must be >= 0, got lr={lr}, adam_lr={adam_lr}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, scaling=scaling,
                        ns_steps=ns_steps, use_muon=True, betas=adam_betas, eps=adam_eps)
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:  # AdamW groups take the AdamW defaults unless they set their own
            if not g.get("use_muon", True):
                g.setdefault("lr", adam_lr)
                g.setdefault("weight_decay", adam_weight_decay)
        super().__init__(groups, defaults)
        for g in self.param_groups:
            for p in g["params"]:
                if g["use_muon"] and p.ndim < 2:
                    raise ValueError(f"Muon group holds a {p.ndim}-D parameter of shape {tuple(p.shape)}; "
                                     "put it in a use_muon=False (AdamW) group")

    @torch.no_grad()
    def step(self, closure=None):
        """Return the closure's loss (if any) after one update of every parameter with a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if g["use_muon"]:
                    if "momentum" not in state:
                        state["momentum"] = torch.zeros_like(p)
                    u = muon_update(p.grad, state["momentum"], g["momentum"], g["nesterov"], g["ns_steps"])
                    p.mul_(1 - g["lr"] * g["weight_decay"])
                    p.add_(u, alpha=-g["lr"] * update_scale(tuple(p.shape), g["scaling"]))
                else:
                    self._adamw(p, state, g)
        return loss

    @staticmethod
    def _adamw(p: torch.Tensor, state: dict, g: dict) -> None:
        """AdamW step for one non-matrix parameter (torch.optim.AdamW's formula, bias-corrected)."""
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        b1, b2 = g["betas"]
        state["exp_avg"].lerp_(p.grad, 1 - b1)
        state["exp_avg_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        denom = (state["exp_avg_sq"] / (1 - b2 ** state["step"])).sqrt_().add_(g["eps"])
        p.mul_(1 - g["lr"] * g["weight_decay"])
        p.addcdiv_(state["exp_avg"], denom, value=-g["lr"] / (1 - b1 ** state["step"]))


def is_gain(p: torch.Tensor) -> bool:
    """Return whether a parameter is a vector in disguise (biases, norms, gains shaped (1, C, 1, 1)):
    at most one of its dimensions is larger than 1, so it has no matrix for Newton-Schulz to orthogonalize."""
    return sum(d > 1 for d in p.shape) <= 1


def muon_param_groups(model: torch.nn.Module, exclude: tuple[str, ...] = ()) -> list[dict]:
    """Return [muon group, adamw group] by role: every hidden matrix and conv to Muon; the input and output
    layers, gains, biases and norms to AdamW.

    The input and output layers are the modules the model names in ``io_layers`` (the student does), else
    the first and last modules, in registration order, that hold a weight matrix. Names starting with any
    prefix in ``exclude`` also go to AdamW.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    io = tuple(getattr(model, "io_layers", ()))
    if not io:
        owners = [n.rsplit(".", 1)[0] for n, p in named if "." in n and not is_gain(p)]
        io = (owners[0], owners[-1]) if owners else ()
    hidden, other = [], []
    for n, p in named:
        owner = n.rsplit(".", 1)[0] if "." in n else ""
        to_adam = is_gain(p) or owner in io or (bool(exclude) and n.startswith(exclude))
        (other if to_adam else hidden).append(p)
    return [g for g in ({"params": hidden, "use_muon": True}, {"params": other, "use_muon": False}) if g["params"]]


@torch.no_grad()
def muon_update_image(z: torch.Tensor, grad: torch.Tensor, momentum: torch.Tensor, lr: float,
                      beta: float = 0.95, scaling: str = "rms", ns_steps: int = 5) -> torch.Tensor:
    """Return z after one Muon step on an image/latent (N, C, H, W): each item viewed as (C, H*W) for NS5.

    The paper's ``z = z - eta * MuonUpdate(grad, RMS(z))``; the 'rms' scaling makes the update's RMS ~0.2 lr.
    ``momentum`` (same shape as z) is updated in place. A 1 x N view would degenerate to normalized
    gradient descent, hence channels x pixels.
    """
    if z.shape != grad.shape or z.shape != momentum.shape or z.ndim != 4:
        raise ValueError(f"z, grad and momentum must share one (N, C, H, W) shape, got "
                         f"{tuple(z.shape)}, {tuple(grad.shape)}, {tuple(momentum.shape)}")
    n, c = z.shape[:2]
    for i in range(n):
        u = muon_update(grad[i].reshape(c, -1), momentum[i].view(c, -1), beta, True, ns_steps)
        z[i].sub_(u.view_as(z[i]), alpha=lr * update_scale((c, u.size(1)), scaling))
    return z
