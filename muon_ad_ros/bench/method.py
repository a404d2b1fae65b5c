"""`muon-ad bench method`: Muon vs AdamW on the same distillation, and the paper's Table II ablation.

Muon vs AdamW: the plain distillation (AD loss, no curriculum/projection/mask, so the loss is the same
function at every step), same seed, a small lr sweep for each; the figure of merit is the validation loss
(style + content, retention 1.0, fixed crops) every ``eval_every`` steps. Reported: each optimizer's best
loss, the iterations and training wall time Muon needs to reach AdamW's best loss, and the loss std over
the second half of training. Ablation: baseline, + dynamic mask, + curriculum, + projection (cumulative),
scored by validation style/content loss and SSIM to content at retention 1.0 and 0.4.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from muon_ad_ros.train import data
from muon_ad_ros.train.distill import Distiller, TrainConfig

MUON_LRS = (0.01, 0.02, 0.04)
ADAMW_LRS = (3e-4, 1e-3, 3e-3)


@torch.no_grad()
def evaluate(trainer: Distiller, retention: float = 1.0) -> dict:
    """Return validation losses and SSIM to content of the trainer's student at ``retention``."""
    from skimage.metrics import structural_similarity
    trainer.student.eval()
    out = trainer.student(trainer.val, retention)
    losses = trainer.loss_fn(out, trainer.val)
    ssim = [structural_similarity(data.to_uint8(o), data.to_uint8(c), channel_axis=2)
            for o, c in zip(out, trainer.val)]
    return {"style": float(losses["style"]), "content": float(losses["content"]),
            "total": float(losses["total"]), "ssim": float(np.mean(ssim))}


def run(cfg: TrainConfig, style: np.ndarray, content: list, eval_every: int) -> dict:
    """Train one configuration; return its curves (train loss, validation total loss with train seconds)."""
    trainer = Distiller(cfg, style, content)
    train_seconds, curve, losses = 0.0, [], []
    curve.append({"step": 0, "seconds": 0.0, **evaluate(trainer)})
    while trainer.step < cfg.iters:
        t = time.perf_counter()
        rec = trainer.train_step()
        train_seconds += time.perf_counter() - t
        losses.append(rec["loss"])
        if trainer.step % eval_every == 0 or trainer.step == cfg.iters:
            curve.append({"step": trainer.step, "seconds": train_seconds, **evaluate(trainer)})
    half = losses[len(losses) // 2:]
    return {"optimizer": cfg.optimizer, "lr": cfg.lr, "train_loss": losses, "curve": curve,
            "best_val": min(c["total"] for c in curve), "train_seconds": train_seconds,
            "loss_std_second_half": float(np.std(half)), "final_r100": curve[-1],
            "final_r040": evaluate(trainer, 0.4)}


def reach(curve: list[dict], target: float) -> dict | None:
    """Return the first evaluation point whose validation loss is <= target, or None."""
    return next((c for c in curve if c["total"] <= target), None)


def compare(runs: list[dict]) -> dict:
    """Return the Muon vs AdamW summary from the sweep runs."""
    best = {o: min((r for r in runs if r["optimizer"] == o), key=lambda r: r["best_val"]) for o in ("muon", "adamw")}
    target = best["adamw"]["best_val"]
    adam_at = reach(best["adamw"]["curve"], target)
    muon_at = reach(best["muon"]["curve"], target)
    out = {"adamw_best_loss": target, "adamw_best_lr": best["adamw"]["lr"], "muon_best_lr": best["muon"]["lr"],
           "muon_best_loss": best["muon"]["best_val"], "adamw_iterations_to_best": adam_at["step"],
           "adamw_seconds_to_best": adam_at["seconds"],
           "muon_iterations_to_adamw_best": muon_at["step"] if muon_at else None,
           "muon_seconds_to_adamw_best": muon_at["seconds"] if muon_at else None,
           "loss_std_second_half": {o: best[o]["loss_std_second_half"] for o in best}}
    if muon_at and adam_at["step"]:
        out["iteration_ratio"] = muon_at["step"] / adam_at["step"]
        out["wall_time_ratio"] = muon_at["seconds"] / adam_at["seconds"]
    return out


def plot(runs: list[dict], ablation: list[dict], path: Path) -> Path:
    """Write the loss-curves PNG: validation loss per sweep run, and the ablation's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in runs:
        steps = [c["step"] for c in r["curve"]]
        axes[0].plot(steps, [c["total"] for c in r["curve"]], "-" if r["optimizer"] == "muon" else "--",
                     label=f"{r['optimizer']} lr={r['lr']:g}")
    axes[0].set(xlabel="iteration", ylabel="validation loss (style + content_weight * content)", title="Muon vs AdamW")
    axes[0].legend(fontsize=8)
    for a in ablation:
        steps = [c["step"] for c in a["curve"]]
        axes[1].plot(steps, [c["style"] for c in a["curve"]], label=a["name"])
    axes[1].set(xlabel="iteration", ylabel="validation style loss (r=1.0)", title="Ablation (Table II order)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(summary: dict, ablation: list[dict], meta: dict) -> str:
    """Return the Markdown report."""
    s = summary
    fmt = lambda v, f="{:.3f}": "n/a" if v is None else f.format(v)
    lines = [f"# Method benchmark ({meta['style']}, {meta['iters']} iterations, seed {meta['seed']})", "",
             f"Machine: {meta['machine']}; command: `{meta['command']}`", "",
             "## Muon vs AdamW (validation loss, retention 1.0)", "",
             "| | AdamW | Muon |", "|---|---|---|",
             f"| best lr of sweep | {s['adamw_best_lr']:g} | {s['muon_best_lr']:g} |",
             f"| best loss | {s['adamw_best_loss']:.4f} | {s['muon_best_loss']:.4f} |",
             f"| iterations to AdamW's best | {s['adamw_iterations_to_best']} | "
             f"{fmt(s['muon_iterations_to_adamw_best'], '{}')} |",
             f"| train seconds to AdamW's best | {s['adamw_seconds_to_best']:.1f} | "
             f"{fmt(s['muon_seconds_to_adamw_best'], '{:.1f}')} |",
             f"| train-loss std, 2nd half | {s['loss_std_second_half']['adamw']:.4f} | "
             f"{s['loss_std_second_half']['muon']:.4f} |", "",
             f"Iteration ratio Muon/AdamW: {fmt(s.get('iteration_ratio'))} (target <= 0.45; paper 1200/2700 = 0.44); "
             f"wall-time ratio: {fmt(s.get('wall_time_ratio'))} (target <= 0.6).", "",
             "## Ablation (paper Table II order, cumulative)", "",
             "| configuration | style r=1.0 | content r=1.0 | SSIM r=1.0 | style r=0.4 | SSIM r=0.4 |",
             "|---|---|---|---|---|---|"]
    for a in ablation:
        f1, f4 = a["final_r100"], a["final_r040"]
        lines.append(f"| {a['name']} | {f1['style']:.4f} | {f1['content']:.4f} | {f1['ssim']:.3f} | "
                     f"{f4['style']:.4f} | {f4['ssim']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """`muon-ad bench method`: write JSON, Markdown and a loss-curves PNG; returns the exit status."""
    p = argparse.ArgumentParser(prog="muon-ad bench method", description=__doc__.splitlines()[0])
    p.add_argument("--style", default="mosaic")
    p.add_argument("--iters", type=int, default=240)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="out/bench_method")
    p.add_argument("--fast", action="store_true", help="tiny run for tests")
    a = p.parse_args(argv)
    if a.fast:
        a.iters, a.eval_every, a.batch, a.crop = 6, 3, 1, 64
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    style = data.style_image(a.style)[0]
    content = data.content_images()
    base = TrainConfig(iters=a.iters, batch=a.batch, crop=a.crop, seed=a.seed, threads=a.threads,
                       projection=False, curriculum=False, dynamic_mask=False,
                       validate_every=10 ** 9, reorder_every=max(2, a.iters // 4), checkpoint_every=10 ** 9,
                       style_side=96 if a.fast else TrainConfig.style_side)
    t0 = time.perf_counter()
    runs = []
    for opt, lrs in (("adamw", ADAMW_LRS), ("muon", MUON_LRS)):
        for lr in (lrs[1:2] if a.fast else lrs):
            print(f"sweep: {opt} lr={lr:g}", flush=True)
            runs.append(run(dataclasses.replace(base, optimizer=opt, lr=lr), style, content, a.eval_every))
    summary = compare(runs)
    muon_lr = summary["muon_best_lr"]
    ablation = []
    steps = [("baseline", {}), ("+ dynamic mask", {"dynamic_mask": True}), ("+ curriculum", {"curriculum": True}),
             ("+ projection", {"projection": True})]
    flags = {}
    for name, change in steps:
        flags.update(change)
        print(f"ablation: {name}", flush=True)
        if name == "baseline":
            r = next(x for x in runs if x["optimizer"] == "muon" and x["lr"] == muon_lr)
        else:
            r = run(dataclasses.replace(base, optimizer="muon", lr=muon_lr, **flags), style, content, a.eval_every)
        ablation.append({"name": name, "flags": dict(flags), **{k: r[k] for k in ("curve", "final_r100", "final_r040")}})
    meta = {"style": a.style, "iters": a.iters, "seed": a.seed, "batch": a.batch, "crop": a.crop,
            "threads": a.threads, "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), "
            f"{__import__('os').cpu_count()} cores, torch {torch.__version__}",
            "command": "muon-ad bench method " + " ".join(sys.argv[1:] if argv is None else argv), "seconds": round(time.perf_counter() - t0, 1)}
    (out / "method.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs,
                                                 "ablation": ablation}, indent=1) + "\n")
    (out / "method.md").write_text(markdown(summary, ablation, meta))
    plot(runs, ablation, out / "loss_curves.png")
    print((out / "method.md").read_text())
    return 0
