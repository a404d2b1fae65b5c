"""`muon-ad bench method`: the paper's two claims measured over seeds, with 95 % confidence intervals.

1. Muon vs AdamW on the same distillation (AD, content and moment losses at retention 1.0; no
   curriculum, projection, pruning mask or teacher, so the loss is the same function at every step).
   A learning-rate sweep on seed 0 picks each optimizer's lr; a best lr at the edge of its grid extends the
   grid once in that direction, so the chosen lr lies inside it. The Muon arm's auxiliary AdamW (input and
   output layers, gains, biases) runs at AdamW's chosen lr and both use the same weight decay. Then every
   seed trains both arms. Figure of merit: the validation loss on crops of held-out photographs (never
   trained on). Per seed: the iterations and CPU seconds Muon needs to reach AdamW's best loss (and AdamW
   to reach Muon's), as a ratio to AdamW's own.
   The auxiliary AdamW's lr: every seed of the Muon arm again with METHOD.md's 3e-4 (paired by seed).
2. The ablation in the paper's Table II order (cumulative: baseline, + dynamic mask, + curriculum,
   + projection), every row over the same seeds. "+ dynamic mask" is the recipe's slimmable training
   (self-distillation on), under which the curriculum's tau and the retention schedule pick nothing, so
   "+ curriculum" measures its style weights, freeze and lr decay only.
3. The pruning curve: the dynamically pruned network (trained with the dynamic mask) at retention 0.7
   and 0.4 against static networks of equal FLOPs trained separately from scratch, over the same seeds.

Each claim is reported as met, missed or inconclusive from its interval. Writes method.json, method.md
and method.png (curves with 95 % bands). ``--parts`` runs a subset; without the optimizer part the lrs are
TrainConfig's (Muon lr, auxiliary AdamW lr for both the AdamW lr and the auxiliary one).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from muon_ad_ros.bench.report import write_report
from muon_ad_ros.measure import machine
from muon_ad_ros.train import data
from muon_ad_ros.train.distill import Distiller, TrainConfig

MUON_LRS = (0.0025, 0.005, 0.01, 0.02, 0.04)
ADAMW_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
LEVELS = (0.7, 0.4)
METHOD_AUX_LR = 3e-4  # the auxiliary AdamW lr METHOD.md specifies
PARTS = ("optimizers", "aux", "ablation", "pruning")
ABLATION = (("baseline", {}), ("+ dynamic mask", {"dynamic_mask": True}), ("+ curriculum", {"curriculum": True}),
            ("+ projection", {"projection": True}))


def mean_ci(values) -> dict:
    """Returns mean, the 95 % confidence half-width (Student's t) and n of the finite values."""
    from scipy import stats
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return {"mean": None, "ci95": None, "n": 0}
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return {"mean": float(v.mean()), "ci95": half, "n": int(v.size)}


def verdict(ci: dict, bound: float, below: bool = True) -> str:
    """Returns 'met', 'missed' or 'inconclusive' for the claim 'mean <= bound' (below) or '>= bound'."""
    if ci["mean"] is None or ci["ci95"] is None:
        return "inconclusive"
    lo, hi = ci["mean"] - ci["ci95"], ci["mean"] + ci["ci95"]
    if below:
        return "met" if hi <= bound else "missed" if lo > bound else "inconclusive"
    return "met" if lo >= bound else "missed" if hi < bound else "inconclusive"


def held_out_crops(crop: int, count: int = 8) -> torch.Tensor:
    """Returns fixed validation crops of the held-out photographs (the eval split, never trained on)."""
    return data.random_crops(data.content_images(split="eval"), crop, count, np.random.default_rng(12345))


def config(base: TrainConfig, **changes) -> TrainConfig:
    """Returns base with the changes whose fields this TrainConfig has."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if k in fields})


@torch.no_grad()
def evaluate(trainer: Distiller, val: torch.Tensor, retention: float = 1.0) -> dict:
    """Returns validation style/content/total loss and SSIM to content at ``retention``."""
    from skimage.metrics import structural_similarity
    trainer.student.eval()
    out = trainer.student(val, retention)
    losses = trainer.loss_fn(out, val)
    total = float(losses["style"] + trainer.cfg.content_weight * losses["content"])
    ssim = [structural_similarity(data.to_uint8(o), data.to_uint8(c), channel_axis=2) for o, c in zip(out, val)]
    return {"style": float(losses["style"]), "content": float(losses["content"]), "total": total,
            "ssim": float(np.mean(ssim))}


def narrow(trainer: Distiller, widths: tuple[int, int], res_hidden: int) -> Distiller:
    """Returns the trainer with a narrower student of its own (a static network), optimizer rebuilt."""
    from muon_ad_ros.model.student import Student, StudentConfig
    from muon_ad_ros.train.pruning import ChannelImportance
    torch.manual_seed(trainer.cfg.seed)
    trainer.student = Student(StudentConfig(widths=widths, res_hidden=res_hidden, subpixel=trainer.cfg.subpixel))
    trainer.optimizer = trainer._optimizer()
    for g in trainer.optimizer.param_groups:
        g["base_lr"] = g["lr"]
    trainer.importance = ChannelImportance(trainer.student)
    return trainer


def static_width(retention: float, size: int = 256) -> tuple[tuple[int, int], int]:
    """Returns (widths, res_hidden) of the static network whose FLOPs match the dynamic one at retention."""
    from muon_ad_ros.model.student import Student, StudentConfig
    full = Student()
    target = full.flops(size, size, retention)
    best = None
    for w4 in range(8, 33, 8):
        for w8 in range(8, 65, 8):
            net = Student(StudentConfig(widths=(w4, w8), res_hidden=w8))
            err = abs(net.flops(size, size) - target)
            if best is None or err < best[0]:
                best = (err, (w4, w8), w8)
    return best[1], best[2]


PARTIAL_PATH: Path | None = None    # every finished run is appended here as one JSON line


def run(cfg: TrainConfig, style: np.ndarray, content: list, val: torch.Tensor, eval_every: int,
        static: tuple | None = None, levels: tuple[float, ...] = LEVELS) -> dict:
    """Trains one configuration; returns its validation curve (with CPU seconds) and the final scores.
    Each finished run is also appended to the partial file, so a run cut short keeps what it measured."""
    result = _run(cfg, style, content, val, eval_every, static, levels)
    if PARTIAL_PATH is not None:
        with PARTIAL_PATH.open("a") as f:
            f.write(json.dumps({"config": dataclasses.asdict(cfg), "static": static, **result}) + "\n")
    return result


def _run(cfg, style, content, val, eval_every, static, levels) -> dict:
    trainer = Distiller(cfg, style, content)
    if static:
        narrow(trainer, *static)
    cpu, curve = 0.0, [{"step": 0, "cpu_s": 0.0, **evaluate(trainer, val)}]
    while trainer.step < cfg.iters:
        t = time.process_time()
        trainer.train_step()
        cpu += time.process_time() - t
        if trainer.step % eval_every == 0 or trainer.step == cfg.iters:
            curve.append({"step": trainer.step, "cpu_s": cpu, **evaluate(trainer, val)})
    return {"optimizer": cfg.optimizer, "lr": cfg.lr, "seed": cfg.seed, "curve": curve,
            "best": min(c["total"] for c in curve), "cpu_s": cpu,
            "final": {str(r): evaluate(trainer, val, r) for r in (1.0, *([] if static else levels))}}


def reach(curve: list[dict], target: float) -> dict | None:
    """Returns the first evaluation point whose validation loss is <= target, or None."""
    return next((c for c in curve if c["total"] <= target), None)


def pair(muon: dict, adamw: dict) -> dict:
    """Returns the per-seed comparison of one Muon run and one AdamW run."""
    a_best, m_best = reach(adamw["curve"], adamw["best"]), reach(muon["curve"], muon["best"])
    m_at, a_at = reach(muon["curve"], adamw["best"]), reach(adamw["curve"], muon["best"])
    out = {"seed": muon["seed"], "adamw_best": adamw["best"], "muon_best": muon["best"],
           "muon_iters_to_adamw_best": m_at["step"] if m_at else None,
           "adamw_iters_to_muon_best": a_at["step"] if a_at else None,
           "adamw_iters_to_own_best": a_best["step"], "muon_iters_to_own_best": m_best["step"]}
    out["iteration_ratio"] = m_at["step"] / a_best["step"] if m_at and a_best["step"] else None
    out["cpu_ratio"] = m_at["cpu_s"] / a_best["cpu_s"] if m_at and a_best["cpu_s"] else None
    return out


def sweep(base, style, content, val, eval_every, optimizer: str, grid: tuple[float, ...], **changes) -> tuple:
    """Returns (chosen lr, runs): seed-0 runs over the grid, extended once past an edge that wins."""
    runs = {}
    grid = list(grid)
    for _ in range(2):
        for lr in grid:
            if lr not in runs:
                print(f"sweep {optimizer} lr={lr:g}", flush=True)
                runs[lr] = run(config(base, optimizer=optimizer, lr=lr, seed=0, **changes), style, content, val,
                               eval_every)
        best = min(runs, key=lambda lr: runs[lr]["best"])
        if best == grid[0]:
            grid.insert(0, grid[0] / 3)
        elif best == grid[-1]:
            grid.append(grid[-1] * 3)
        else:
            break
    return best, list(runs.values()), best not in (min(runs), max(runs))


def bands(ax, runs: list[dict], label: str, key: str = "total", style: str = "-"):
    """Draws the mean validation curve of runs with a 95 % band."""
    steps = [c["step"] for c in runs[0]["curve"]]
    stats = [mean_ci([r["curve"][i][key] for r in runs]) for i in range(len(steps))]
    mean = np.array([s["mean"] for s in stats])
    half = np.array([s["ci95"] or 0.0 for s in stats])
    ax.plot(steps, mean, style, label=label)
    ax.fill_between(steps, mean - half, mean + half, alpha=0.2)


def plot(result: dict, path: Path) -> Path:
    """Draws the parts of the result that were run, one panel each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [k for k in ("seeds", "ablation", "pruning") if k in result]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.4 * max(1, len(panels)), 4.5), squeeze=False)
    axes = list(axes[0])
    for ax, panel in zip(axes, panels):
        if panel == "seeds":
            bands(ax, result["seeds"]["adamw"], f"AdamW lr={result['lr']['adamw']:g}", style="--")
            bands(ax, result["seeds"]["muon"], f"Muon lr={result['lr']['muon']:g}")
            ax.set(xlabel="iteration", ylabel="held-out validation loss", title="Muon vs AdamW (mean, 95 % band)")
        elif panel == "ablation":
            for name, runs in result["ablation"].items():
                bands(ax, runs, name, key="style")
            ax.set(xlabel="iteration", ylabel="held-out style loss, retention 1.0", title="Ablation (Table II order)")
        else:
            for kind, marker in (("dynamic", "o-"), ("static", "s--")):
                pr = result["pruning"][kind]
                ax.errorbar([q["flops_fraction"] for q in pr], [q["total"]["mean"] for q in pr],
                            yerr=[q["total"]["ci95"] or 0.0 for q in pr], fmt=marker, capsize=3, label=kind)
            ax.set(xlabel="FLOPs fraction of the full network", ylabel="held-out validation loss",
                   title="Pruning curve (mean, 95 % CI)")
        ax.legend(fontsize=8)
    if "auxiliary" in result and not panels:
        aux = result["auxiliary"]
        for arm, style in (("chosen", "-"), ("method", "--")):
            bands(axes[0], aux["runs"][arm], f"auxiliary AdamW lr={aux['lr'][arm]:g}", style=style)
        axes[0].set(xlabel="iteration", ylabel="held-out validation loss", title="Muon's auxiliary lr")
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def fmt(ci: dict, f: str = "{:.3f}") -> str:
    if ci["mean"] is None:
        return "n/a"
    return f.format(ci["mean"]) + ("" if ci["ci95"] is None else " ± " + f.format(ci["ci95"])) + f" (n={ci['n']})"


def markdown(r: dict) -> str:
    m, c = r["meta"], r["claims"]
    lines = [f"# Method benchmark: {m['style']}, {m['iters']} iterations, {m['seeds']} seeds", "",
             f"Machine: {m['machine']['cpu']} ({m['machine']['cores']} cores), {m['threads']} torch thread(s); "
             f"command: `{m['command']}`; {m['seconds']:.0f} s. Validation: fixed crops of the held-out photographs. "
             "Intervals are 95 % (Student's t over seeds).", ""]
    if "seeds" in r:
        lines += ["## Muon vs AdamW", "",
                  f"Learning rates chosen on seed 0: AdamW {r['lr']['adamw']:g} (grid {r['grids']['adamw']}, inside: "
                  f"{r['inside']['adamw']}), Muon {r['lr']['muon']:g} (grid {r['grids']['muon']}, inside: "
                  f"{r['inside']['muon']}); the Muon arm's auxiliary AdamW at {r['lr']['adamw']:g}.", "",
                  "| per seed | mean ± 95 % CI |", "|---|---|",
                  f"| AdamW best validation loss | {fmt(c['adamw_best'])} |",
                  f"| Muon best validation loss | {fmt(c['muon_best'])} |",
                  f"| Muon iterations to AdamW's best / AdamW's | {fmt(c['iteration_ratio'])} |",
                  f"| Muon CPU seconds to AdamW's best / AdamW's | {fmt(c['cpu_ratio'])} |",
                  f"| seeds where Muon reached AdamW's best | {c['muon_reached']} of {m['seeds']} |",
                  f"| seeds where AdamW reached Muon's best | {c['adamw_reached']} of {m['seeds']} |", "",
                  f"**Claim: Muon reaches AdamW's best loss in <= 0.45x the iterations: {c['iteration_claim']}.**", ""]
    if "auxiliary" in r:
        aux = r["auxiliary"]
        lines += ["## Muon's auxiliary AdamW lr", "",
                  f"Muon at lr {r['lr']['muon']:g}; its auxiliary AdamW (input/output layers, gains, biases) at "
                  f"{aux['lr']['chosen']:g} and at METHOD.md's {aux['lr']['method']:g}, the same seeds.", "",
                  "| auxiliary lr | best validation loss |", "|---|---|",
                  f"| {aux['lr']['chosen']:g} | {fmt(aux['best']['chosen'])} |",
                  f"| {aux['lr']['method']:g} (METHOD.md) | {fmt(aux['best']['method'])} |",
                  f"| difference, paired by seed ({aux['lr']['method']:g} - {aux['lr']['chosen']:g}) | "
                  f"{fmt(aux['method_minus_chosen'])} |", "",
                  f"**METHOD.md's auxiliary lr: {aux['verdict']}.**", ""]
    if "ablation_table" in r:
        lines += ["## Ablation (Table II order, cumulative)", "",
                  "| configuration | style r=1.0 | content r=1.0 | SSIM r=1.0 | total r=0.4 | SSIM r=0.4 |",
                  "|---|---|---|---|---|---|"]
        for name, row in r["ablation_table"].items():
            lines.append(f"| {name} | {fmt(row['style'])} | {fmt(row['content'])} | {fmt(row['ssim'])} | "
                         f"{fmt(row['total_r040'])} | {fmt(row['ssim_r040'])} |")
        lines.append("")
    if "pruning" in r:
        lines += ["## Pruning curve: dynamic vs static at equal FLOPs", "",
                  "| network | FLOPs fraction | validation loss | SSIM to content |", "|---|---|---|---|"]
        for kind in ("dynamic", "static"):
            for q in r["pruning"][kind]:
                lines.append(f"| {kind} {q['label']} | {q['flops_fraction']:.2f} | {fmt(q['total'])} | {fmt(q['ssim'])} |")
        lines += ["", f"**Claim: dynamic pruning beats static at equal FLOPs: {c['pruning_claim']}** "
                      f"(difference static - dynamic per level: "
                      + ", ".join(f"{k} {fmt(v)}" for k, v in c["pruning_difference"].items()) + ").", ""]
    return "\n".join(lines)


def optimizers(base, style, content, val, a, grids) -> dict:
    """Muon vs AdamW: the lr sweeps on seed 0, then every seed of both arms; returns that part's results."""
    adamw_lr, adamw_sweep, adamw_inside = sweep(base, style, content, val, a.eval_every, "adamw", grids[1])
    muon_lr, muon_sweep, muon_inside = sweep(base, style, content, val, a.eval_every, "muon", grids[0],
                                             adam_lr=adamw_lr)
    seeds = {"adamw": [next(r for r in adamw_sweep if r["lr"] == adamw_lr)],
             "muon": [next(r for r in muon_sweep if r["lr"] == muon_lr)]}
    for seed in range(1, a.seeds):
        for opt, lr, extra in (("adamw", adamw_lr, {}), ("muon", muon_lr, {"adam_lr": adamw_lr})):
            print(f"seed {seed}: {opt}", flush=True)
            seeds[opt].append(run(config(base, optimizer=opt, lr=lr, seed=seed, **extra), style, content, val,
                                  a.eval_every))
    pairs = [pair(m, w) for m, w in zip(seeds["muon"], seeds["adamw"])]
    claims = {"adamw_best": mean_ci([p["adamw_best"] for p in pairs]), "muon_best": mean_ci([p["muon_best"] for p in pairs]),
              "iteration_ratio": mean_ci([p["iteration_ratio"] for p in pairs]),
              "cpu_ratio": mean_ci([p["cpu_ratio"] for p in pairs]),
              "muon_reached": sum(p["muon_iters_to_adamw_best"] is not None for p in pairs),
              "adamw_reached": sum(p["adamw_iters_to_muon_best"] is not None for p in pairs)}
    claims["iteration_claim"] = verdict(claims["iteration_ratio"], 0.45)
    if claims["muon_reached"] < a.seeds:
        claims["iteration_claim"] = "missed" if claims["muon_reached"] == 0 else "inconclusive"
    return {"lr": {"adamw": adamw_lr, "muon": muon_lr},
            "grids": {"adamw": sorted({r["lr"] for r in adamw_sweep}), "muon": sorted({r["lr"] for r in muon_sweep})},
            "inside": {"adamw": adamw_inside, "muon": muon_inside},
            "pairs": pairs, "claims": claims, "seeds": seeds, "sweeps": {"adamw": adamw_sweep, "muon": muon_sweep}}


def auxiliary(muon_base, style, content, val, a, chosen: list[dict]) -> dict:
    """The Muon arm with its auxiliary AdamW at METHOD.md's lr, paired by seed with ``chosen`` (the same arm
    at the chosen auxiliary lr; trained here when empty); returns the paired best-loss difference."""
    lrs = {"chosen": muon_base.adam_lr, "method": METHOD_AUX_LR}
    runs = {"chosen": list(chosen), "method": []}
    for seed in range(a.seeds):
        for arm in ("chosen", "method") if not chosen else ("method",):
            print(f"auxiliary lr {lrs[arm]:g}, seed {seed}", flush=True)
            runs[arm].append(run(config(muon_base, seed=seed, adam_lr=lrs[arm]), style, content, val, a.eval_every))
    diff = mean_ci([m["best"] - c["best"] for m, c in zip(runs["method"], runs["chosen"])])
    return {"lr": lrs, "best": {k: mean_ci([r["best"] for r in v]) for k, v in runs.items()},
            "method_minus_chosen": diff,
            # "better": METHOD's lr reaches a lower loss; "worse": higher; else the interval holds 0
            "verdict": {"met": "better", "missed": "worse"}.get(verdict(diff, 0.0), "no difference"),
            "runs": runs}


def ablation_rows(muon_base, style, content, val, a, baseline: list[dict]) -> dict:
    """The ablation in Table II order over the same seeds; its baseline is the Muon arm (trained here when
    ``baseline`` is empty)."""
    ablation, flags = {"baseline": list(baseline)}, {}
    if not baseline:
        for seed in range(a.seeds):
            print(f"ablation baseline, seed {seed}", flush=True)
            ablation["baseline"].append(run(config(muon_base, seed=seed), style, content, val, a.eval_every))
    for name, change in ABLATION[1:]:
        flags.update(change)
        ablation[name] = []
        for seed in range(a.seeds):
            print(f"ablation {name}, seed {seed}", flush=True)
            ablation[name].append(run(config(muon_base, seed=seed, **flags), style, content, val, a.eval_every))
    table = {}
    for name, runs in ablation.items():
        fin = [r["curve"][-1] for r in runs]
        r04 = [r["final"].get("0.4") for r in runs]
        table[name] = {"style": mean_ci([f["style"] for f in fin]), "content": mean_ci([f["content"] for f in fin]),
                       "ssim": mean_ci([f["ssim"] for f in fin]),
                       "total_r040": mean_ci([x["total"] for x in r04 if x]),
                       "ssim_r040": mean_ci([x["ssim"] for x in r04 if x])}
    return {"ablation": ablation, "ablation_table": table}


def pruning_curve(muon_base, style, content, val, a, dynamic: list[dict]) -> dict:
    """The dynamically pruned network (``dynamic``: runs with the dynamic mask; trained here when empty) at
    each level against static networks of equal FLOPs trained from scratch over the same seeds."""
    from muon_ad_ros.model.student import Student, StudentConfig
    if not dynamic:
        dynamic = []
        for seed in range(a.seeds):
            print(f"dynamic mask, seed {seed}", flush=True)
            dynamic.append(run(config(muon_base, seed=seed, dynamic_mask=True), style, content, val, a.eval_every))
    full = Student()
    pruning = {"dynamic": [], "static": []}
    for level in (1.0, *LEVELS):
        frac = full.flops(256, 256, level) / full.flops(256, 256)
        dyn = [r["final"][str(level)] for r in dynamic]
        pruning["dynamic"].append({"label": f"r={level}", "flops_fraction": frac,
                                   "total": mean_ci([d["total"] for d in dyn]),
                                   "ssim": mean_ci([d["ssim"] for d in dyn])})
    for level in LEVELS:
        widths, hidden = static_width(level)
        frac = Student(StudentConfig(widths=widths, res_hidden=hidden)).flops(256, 256) / full.flops(256, 256)
        runs = []
        for seed in range(a.seeds):
            print(f"static {widths}/{hidden}, seed {seed}", flush=True)
            runs.append(run(config(muon_base, seed=seed), style, content, val, a.eval_every,
                            static=(widths, hidden)))
        pruning["static"].append({"label": f"widths {widths}, hidden {hidden}", "flops_fraction": frac,
                                  "total": mean_ci([r["final"]["1.0"]["total"] for r in runs]),
                                  "ssim": mean_ci([r["final"]["1.0"]["ssim"] for r in runs]),
                                  "runs": [r["final"]["1.0"] for r in runs]})
    diffs = {}
    for i, level in enumerate(LEVELS):
        dyn = [r["final"][str(level)]["total"] for r in dynamic]
        diffs[f"r={level}"] = mean_ci([s["total"] - d for s, d in zip(pruning["static"][i]["runs"], dyn)])
    claim = ("met" if all(verdict(d, 0.0, below=False) == "met" for d in diffs.values()) else
             "missed" if any(verdict(d, 0.0, below=True) == "met" for d in diffs.values()) else "inconclusive")
    return {"pruning": pruning, "pruning_difference": diffs, "pruning_claim": claim}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="muon-ad bench method", description=__doc__.splitlines()[0])
    p.add_argument("--style", default="mosaic")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                   help="which parts to run (default: all)")
    p.add_argument("--out", default="out/bench")
    p.add_argument("--fast", action="store_true", help="tiny run for tests: 2 seeds, 6 iterations, 2-point grids")
    a = p.parse_args(argv)
    grids = (MUON_LRS, ADAMW_LRS)
    if a.fast:
        a.iters, a.eval_every, a.batch, a.crop, a.seeds = 6, 3, 1, 64, 2
        grids = ((0.005, 0.01, 0.02), (3e-4, 1e-3, 3e-3))
    torch.set_num_threads(a.threads)
    global PARTIAL_PATH
    Path(a.out).mkdir(parents=True, exist_ok=True)
    PARTIAL_PATH = Path(a.out) / "method_partial.jsonl"
    PARTIAL_PATH.write_text("")
    t0 = time.perf_counter()
    style = data.style_image(a.style)[0]
    content = data.content_images(split="train")
    val = held_out_crops(a.crop, 2 if a.fast else 8)
    base = config(TrainConfig(), iters=a.iters, batch=a.batch, crop=a.crop, threads=a.threads, projection=False,
                  curriculum=False, dynamic_mask=False, teacher_weight=0.0, teacher_feature_weight=0.0,
                  validate_every=10 ** 9,                  reorder_every=max(2, a.iters // 4), checkpoint_every=10 ** 9,
                  style_side=96 if a.fast else TrainConfig.style_side)
    result: dict = {"lr": {"adamw": base.adam_lr, "muon": base.lr}, "claims": {}}
    muon_seeds: list[dict] = []
    if "optimizers" in a.parts:
        part = optimizers(base, style, content, val, a, grids)
        claims = part.pop("claims")
        result.update(part)
        result["claims"].update(claims)
        muon_seeds = part["seeds"]["muon"]
    muon_base = config(base, optimizer="muon", lr=result["lr"]["muon"], adam_lr=result["lr"]["adamw"])
    if "aux" in a.parts:
        result["auxiliary"] = auxiliary(muon_base, style, content, val, a, muon_seeds)
        muon_seeds = muon_seeds or result["auxiliary"]["runs"]["chosen"]
    if "ablation" in a.parts:
        result.update(ablation_rows(muon_base, style, content, val, a, muon_seeds))
    if "pruning" in a.parts:
        part = pruning_curve(muon_base, style, content, val, a, result.get("ablation", {}).get("+ dynamic mask", []))
        result["pruning"] = part["pruning"]
        result["claims"].update(pruning_difference=part["pruning_difference"], pruning_claim=part["pruning_claim"])
    result["meta"] = {"style": a.style, "iters": a.iters, "seeds": a.seeds, "batch": a.batch, "crop": a.crop,
                      "threads": a.threads, "parts": a.parts, "machine": machine("torch"),
                      "command": "muon-ad bench method " + " ".join(sys.argv[1:] if argv is None else argv),
                      "seconds": time.perf_counter() - t0}
    out = Path(a.out)
    write_report(out, "method", result, markdown(result))
    plot(result, out / "method.png")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
