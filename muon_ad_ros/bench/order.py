"""`muon-ad bench order`: which channel order makes the best pruned levels, at the moment it is fixed.

distill saves ``before_order.pt`` just before its last re-ordering (TrainConfig.order_until), with the
importance and L1-norm scores of that moment. Each candidate order (importance, L1 norm, N random
permutations) is applied to a copy of that student, and the pruned levels are compared with the full
network on the held-out photographs (data.CONTENT_EVAL, as frames of --size, or a folder): mean absolute
difference to the r=1.0 output and SSIM to it; "current" keeps the order the student has. The order the last phase starts from is the one whose
levels lose least before any further training.

Several checkpoints (one distill run per seed) give each order's mean and 95 % interval over the seeds and the
paired difference of each named order to the mean of the random orders of the same seed, with a verdict.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from muon_ad_ros.train import data, metrics


def apply_order(student, scores: dict[str, torch.Tensor]) -> None:
    """Permute the student's channel groups by descending score (function unchanged)."""
    student.reorder_channels({k: torch.as_tensor(v) for k, v in scores.items()})


@torch.no_grad()
def level_loss(student, frames: list[torch.Tensor], retentions) -> dict:
    """Return {retention: {"l1": mean |y_r - y_1|, "ssim": mean SSIM(y_r, y_1)}} over the frames."""
    out = {}
    for r in retentions:
        l1, ss = [], []
        for x in frames:
            full, pruned = student(x, 1.0), student(x, r)
            l1.append(float((pruned - full).abs().mean()))
            ss.append(metrics.ssim(data.to_uint8(pruned), data.to_uint8(full)))
        out[f"{r:.2f}"] = {"l1": float(np.mean(l1)), "ssim": float(np.mean(ss))}
    return out


def one_checkpoint(path: Path, frames, retentions, random: int) -> tuple[dict, dict]:
    """Returns ({order: {retention: {"l1", "ssim"}}}, the checkpoint) for the orders of one checkpoint."""
    from muon_ad_ros.train.export import load_checkpoint
    ck = torch.load(path, map_location="cpu", weights_only=True)
    scores = ck.get("order_scores")
    if not scores:
        raise ValueError(f"{path} has no order_scores (write it with muon-ad distill)")
    candidates = {"current": None, **scores}  # current: the order the student was trained with so far
    gen = torch.Generator().manual_seed(0)
    for i in range(random):
        candidates[f"random{i}"] = {k: torch.randperm(len(v), generator=gen).float() for k, v in scores["l1"].items()}
    results = {}
    for name, s in candidates.items():
        student, _, _ = load_checkpoint(path)
        student.eval()
        if s is not None:
            apply_order(student, s)
        results[name] = level_loss(student, frames, retentions)
        print(path.parent.name, name, " ".join(f"r={r} L1 {v['l1']:.4f} SSIM {v['ssim']:.3f}"
                                               for r, v in results[name].items()), flush=True)
    return results, ck


def summarize(runs: list[dict], random: int) -> dict:
    """Returns, per retention, each order's L1 over the checkpoints (mean, 95 % CI) and each named order's paired
    difference to the mean of that checkpoint's random orders, with its verdict ("better": lower L1)."""
    from muon_ad_ros.bench.method import mean_ci, verdict
    named = [n for n in runs[0] if not n.startswith("random")]
    out = {}
    for r in runs[0][named[0]]:
        rand = [float(np.mean([run[f"random{i}"][r]["l1"] for i in range(random)])) for run in runs]
        row = {"random_mean": mean_ci(rand),
               "random_range": [min(run[f"random{i}"][r]["l1"] for run in runs for i in range(random)),
                                max(run[f"random{i}"][r]["l1"] for run in runs for i in range(random))]}
        for n in named:
            diff = mean_ci([run[n][r]["l1"] - m for run, m in zip(runs, rand)])
            row[n] = {"l1": mean_ci([run[n][r]["l1"] for run in runs]), "minus_random": diff,
                      "verdict": {"met": "better", "missed": "worse"}.get(verdict(diff, 0.0), "inconclusive")}
        out[r] = row
    return out


def markdown(report: dict) -> str:
    """Returns the summary as a Markdown table."""
    from muon_ad_ros.bench.method import fmt
    lines = [f"# Channel order: {len(report['checkpoints'])} checkpoints (seeds), {report['frames']} held-out frames "
             f"at {report['size']}", "", f"Command: `{report['command']}`. Mean |level - r=1.0| over the frames "
             "(lower: the level loses less); intervals 95 % over the checkpoints.", "",
             "| retention | order | L1 to r=1.0 | minus the random orders' mean (paired) | verdict |",
             "|---|---|---|---|---|"]
    for r, row in report["summary"].items():
        lo, hi = row["random_range"]
        lines.append(f"| {r} | random (mean of {report['random']} per seed; range {lo:.4f}-{hi:.4f}) | "
                     f"{fmt(row['random_mean'], '{:.4f}')} | | |")
        for n, v in row.items():
            if isinstance(v, dict) and "verdict" in v:
                lines.append(f"| {r} | {n} | {fmt(v['l1'], '{:.4f}')} | {fmt(v['minus_random'], '{:.4f}')} | "
                             f"{v['verdict']} |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> Path:
    """Draws each order's L1 to the full network per retention (mean over the checkpoints, 95 % CI bars)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    levels = list(report["summary"])
    orders = ["random_mean"] + [n for n, v in report["summary"][levels[0]].items()
                                if isinstance(v, dict) and "verdict" in v]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    width = 0.8 / len(orders)
    for i, name in enumerate(orders):
        stats = [report["summary"][lv][name] if name == "random_mean" else report["summary"][lv][name]["l1"]
                 for lv in levels]
        xs = [j + (i - (len(orders) - 1) / 2) * width for j in range(len(levels))]
        ax.bar(xs, [c["mean"] for c in stats], width, yerr=[c["ci95"] or 0.0 for c in stats], capsize=3,
               label="random (mean per seed)" if name == "random_mean" else name)
    ax.set_xticks(range(len(levels)), [f"retention {lv}" for lv in levels])
    ax.set(ylabel="mean |level - r=1.0| on held-out frames",
           title=f"Channel order at the fixing point ({len(report['checkpoints'])} seeds, 95 % CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    """`muon-ad bench order --checkpoint before_order.pt [...] [--random 5] --out DIR`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="muon-ad bench order", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, nargs="+",
                   help="before_order.pt written by muon-ad distill (one per seed for intervals)")
    p.add_argument("--out", default="out/bench", help="output directory (bench_order.json, .md, .png)")
    p.add_argument("--content", default="default", help="folder of photos, or 'default' (held-out split)")
    p.add_argument("--random", type=int, default=5, help="number of random orders per checkpoint")
    p.add_argument("--size", default="320x240", help="WxH of the frames")
    p.add_argument("--retentions", type=float, nargs="+", default=[0.7, 0.4])
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    if a.random < 1:
        p.error(f"--random must be >= 1, got {a.random}")
    torch.set_num_threads(a.threads)
    w, h = (int(v) for v in a.size.lower().split("x"))
    folder = None if a.content == "default" else a.content
    frames = [data.to_tensor(data.fit_frame(img, w, h)) for img in data.content_images(folder, split="eval")]
    runs, steps = [], []
    for path in a.checkpoint:
        try:
            results, ck = one_checkpoint(Path(path), frames, a.retentions, a.random)
        except ValueError as exc:
            p.error(str(exc))
        runs.append(results)
        steps.append(ck.get("step"))
    report = {"command": "muon-ad bench order " + shlex.join(argv), "checkpoints": a.checkpoint, "steps": steps,
              "frames": len(frames), "size": a.size, "random": a.random,
              "summary": summarize(runs, a.random), "results": runs}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_order.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "bench_order.md").write_text(markdown(report))
    plot(report, out / "bench_order.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
